"""Guidance row plans and their combination formulas (no model needed)."""

from __future__ import annotations

import pytest
import torch

from imageconductor.guidance import GuidanceRow, normalize_mode, plan_guidance


def _rows(*pairs):
    return tuple(GuidanceRow(text, adapter) for text, adapter in pairs)


def test_official_cfg_plan_is_negative_then_positive_with_the_mode_adapter():
    plan = plan_guidance("camera", 7.5)
    assert plan.rows == _rows(("negative", "camera"), ("positive", "camera"))
    assert plan.row_adapters(2) == ["camera", "camera", "camera", "camera"]


def test_guidance_scale_at_most_one_drops_the_unconditional_row_like_the_release():
    plan = plan_guidance("object", 1.0)
    assert plan.rows == _rows(("positive", "object"))
    eps = torch.randn(1, 4, 3, 2, 2)
    assert torch.equal(plan.combine(eps), eps)


def test_camera_free_plan_rows_are_uncond_base_cond_base_cond_traj():
    plan = plan_guidance("object", 7.5, camera_free_guidance=1.3)
    assert plan.rows == _rows(("negative", "none"), ("positive", "none"), ("positive", "object"))
    assert plan.row_adapters(1) == ["none", "none", "object"]


def test_cfg_combination_matches_the_formula():
    generator = torch.Generator().manual_seed(0)
    uncond, cond = torch.randn(2, 2, 4, 3, 5, 5, generator=generator)
    plan = plan_guidance("object", 6.0)
    expected = uncond + 6.0 * (cond - uncond)
    torch.testing.assert_close(plan.combine(torch.cat([uncond, cond])), expected, rtol=0, atol=1e-6)


def test_camera_free_combination_matches_eq5_elementwise():
    generator = torch.Generator().manual_seed(1)
    base_uncond, base_cond, traj_cond = torch.randn(3, 2, 4, 3, 5, 5, generator=generator)
    cfg, traj = 7.5, 1.7
    plan = plan_guidance({"object": 1.0}, cfg, camera_free_guidance=traj)
    got = plan.combine(torch.cat([base_uncond, base_cond, traj_cond]))
    # Eq. 5 written out term by term.
    expected = base_uncond + cfg * (base_cond - base_uncond) + traj * (traj_cond - base_cond)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_camera_free_without_cfg_keeps_two_positive_rows_and_counts_cfg_as_one():
    generator = torch.Generator().manual_seed(2)
    base_cond, traj_cond = torch.randn(2, 1, 4, 2, 3, 3, generator=generator)
    plan = plan_guidance("object", 1.0, camera_free_guidance=2.0)
    assert plan.rows == _rows(("positive", "none"), ("positive", "object"))
    torch.testing.assert_close(
        plan.combine(torch.cat([base_cond, traj_cond])), base_cond + 2.0 * (traj_cond - base_cond)
    )


def test_lambda_traj_one_and_zero_are_the_expected_special_cases():
    generator = torch.Generator().manual_seed(3)
    base_uncond, base_cond, traj_cond = torch.randn(3, 1, 4, 2, 3, 3, generator=generator)
    stacked = torch.cat([base_uncond, base_cond, traj_cond])
    # λ_traj = 0: plain CFG with the adapter-free ControlNet.
    zero = plan_guidance("object", 5.0, camera_free_guidance=0.0).combine(stacked)
    torch.testing.assert_close(zero, base_uncond + 5.0 * (base_cond - base_uncond))
    # λ_traj = 1: the base conditional prediction is swapped for the trajectory one.
    one = plan_guidance("object", 5.0, camera_free_guidance=1.0).combine(stacked)
    torch.testing.assert_close(one, base_uncond + 5.0 * (base_cond - base_uncond) + traj_cond - base_cond)


def test_combine_rejects_a_batch_that_is_not_a_multiple_of_the_rows():
    with pytest.raises(ValueError, match="multiple of 3"):
        plan_guidance("object", 7.5, camera_free_guidance=1.0).combine(torch.zeros(4, 1))


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("objects", "mode must be"),
        ({"zoom": 1.0}, "unknown adapter 'zoom'"),
        ({"camera": "a lot"}, "must be a number"),
        ({"camera": float("nan")}, "must be finite"),
        ({}, "at least one adapter"),
        (3, "string or a dict"),
    ],
)
def test_bad_modes_are_rejected_by_name(mode, message):
    with pytest.raises(ValueError, match=message):
        normalize_mode(mode)


def test_blend_mode_is_normalised_to_floats():
    assert normalize_mode({"camera": 1, "object": 0.5}) == {"camera": 1.0, "object": 0.5}


def test_camera_free_guidance_needs_a_trajectory_adapter():
    with pytest.raises(ValueError, match="not 'none'"):
        plan_guidance("none", 7.5, camera_free_guidance=1.2)
