"""Motion guidance (trajectory condition against control off) on the official-tiny models: the batched
pipeline against the formula evaluated row by row, its special cases, and per-row flow scales."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from imageconductor.conditioning import image_condition
from imageconductor.guidance import GuidanceRow, plan_guidance
from imageconductor.models import predict_noise


@pytest.fixture(scope="module")
def run(official_pipeline, official_sampling_inputs):
    """``run(**overrides)`` -> final latents, cached."""
    cache: dict[tuple, torch.Tensor] = {}

    def sample(**overrides):
        key = tuple(sorted(overrides.items()))
        if key not in cache:
            kwargs = {**official_sampling_inputs, "output_type": "latent", **overrides}
            cache[key] = official_pipeline(**kwargs).frames
        return cache[key]

    return sample


def _unbatched(pipe, inputs, cfg_scale, motion_scale, adapter="object", traj_scale=None):
    """The guided sampler written out: one single-row noise prediction per term and step."""
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(inputs["num_inference_steps"])
    device = torch.device("cpu")
    uncond_text = pipe.encode_prompt("", device)
    cond_text = pipe.encode_prompt(inputs["prompt"], device)
    image_cond = image_condition(inputs["image_latents"], inputs["num_frames"])
    flow = inputs["flow_condition"]
    models = (pipe.unet, pipe.image_controlnet, pipe.flow_controlnet)
    latents = inputs["latents"].clone()
    with torch.no_grad():
        for timestep in scheduler.timesteps:

            def eps(text, row_adapter, flow_scale=1.0, current=latents, step=timestep):
                return predict_noise(
                    *models, current, step, text, image_cond, flow, [row_adapter], flow_scale=flow_scale
                )

            base_adapter = adapter if traj_scale is None else "none"
            uncond, cond = eps(uncond_text, base_adapter), eps(cond_text, base_adapter)
            off = eps(cond_text, "none", flow_scale=0.0)
            guided = uncond + cfg_scale * (cond - uncond)
            if traj_scale is not None:
                guided = guided + traj_scale * (eps(cond_text, adapter) - cond)
            guided = guided + (motion_scale - 1.0) * (cond - off)
            latents = scheduler.step(guided, timestep, latents, eta=0.0).prev_sample
    return latents


def _close(got, want, tol=1e-4):
    error = (got - want).abs().max().item()
    assert error <= tol * want.abs().max().item(), f"max|diff| {error:.3g}"


def test_batched_motion_guidance_equals_the_formula_row_by_row(
    official_pipeline, official_sampling_inputs, run
):
    pipe, inputs = official_pipeline, official_sampling_inputs
    got = run(mode="object", motion_guidance_scale=2.5)
    _close(got, _unbatched(pipe, inputs, inputs["guidance_scale"], 2.5))


def test_motion_guidance_adds_to_camera_free_guidance_through_the_adapter_free_row(
    official_pipeline, official_sampling_inputs, run
):
    pipe, inputs = official_pipeline, official_sampling_inputs
    got = run(mode="camera", camera_free_guidance=1.5, motion_guidance_scale=2.0)
    _close(got, _unbatched(pipe, inputs, inputs["guidance_scale"], 2.0, adapter="camera", traj_scale=1.5))


def test_motion_guidance_one_is_the_released_sampler_and_changes_the_output_otherwise(run):
    released = run(mode="object")
    assert torch.equal(run(mode="object", motion_guidance_scale=1.0), released)
    stronger = run(mode="object", motion_guidance_scale=2.0)
    assert (stronger - released).abs().max() > 1e-2 * released.abs().max()


def test_motion_guidance_zero_without_cfg_is_trajectory_control_off(run):
    off = run(mode="object", guidance_scale=1.0, flow_conditioning_scale=0.0)
    _close(run(mode="object", guidance_scale=1.0, motion_guidance_scale=0.0), off)
    on = run(mode="object", guidance_scale=1.0)
    assert (on - off).abs().max() > 1e-2 * off.abs().max()


def test_plan_adds_one_flow_free_positive_row_only_when_the_scale_is_not_one():
    assert plan_guidance("object", 7.5, motion_guidance_scale=1.0).num_rows == 2
    plan = plan_guidance("object", 7.5, motion_guidance_scale=3.0)
    assert plan.rows[-1] == GuidanceRow("positive", "none", flow=False)
    assert plan.row_flow_scales(2, 0.5) == [0.5, 0.5, 0.5, 0.5, 0.0, 0.0]
    # trajectory control off altogether: the motion term is zero, so no row is added for it
    assert plan_guidance("object", 7.5, motion_guidance_scale=3.0, trajectory_control=False).num_rows == 2


def test_combine_with_cfg_matches_the_formula():
    generator = torch.Generator().manual_seed(4)
    uncond, cond, off = torch.randn(3, 2, 4, 3, 5, 5, generator=generator)
    got = plan_guidance("camera", 6.0, motion_guidance_scale=2.5).combine(torch.cat([uncond, cond, off]))
    torch.testing.assert_close(got, uncond + 6.0 * (cond - uncond) + 1.5 * (cond - off), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [-0.5, float("nan"), float("inf"), True, "2"])
def test_bad_motion_guidance_scales_are_rejected(scale):
    with pytest.raises(ValueError, match="motion_guidance_scale must be a finite number >= 0"):
        plan_guidance("object", 7.5, motion_guidance_scale=scale)


def test_per_row_flow_scales_equal_separate_calls_and_skip_the_flow_net_for_rows_at_zero(
    official_pipeline, official_sampling_inputs
):
    pipe, inputs = official_pipeline, official_sampling_inputs
    models = (pipe.unet, pipe.image_controlnet, pipe.flow_controlnet)
    text = pipe.encode_prompt(inputs["prompt"], torch.device("cpu"))
    image_cond = image_condition(inputs["image_latents"], inputs["num_frames"])
    sample = inputs["latents"]
    args = (sample.expand(3, *sample.shape[1:]), 500, text, image_cond, inputs["flow_condition"])
    seen_rows: list[int] = []
    hook = pipe.flow_controlnet.register_forward_hook(lambda module, a, out: seen_rows.append(a[0].shape[0]))
    try:
        with torch.no_grad():
            batched = predict_noise(*models, *args, ["object", "none", "object"], flow_scale=[1.0, 0.0, 0.5])
    finally:
        hook.remove()
    assert seen_rows == [1]  # rows 0 and 2 share one flow residual; the row at 0 is not sent
    alone_rows = []
    with torch.no_grad():
        for row, (adapter, scale) in enumerate([("object", 1.0), ("none", 0.0), ("object", 0.5)]):
            alone = predict_noise(
                *models, sample, 500, text, image_cond, inputs["flow_condition"], [adapter], scale
            )
            _close(batched[row : row + 1], alone)
            alone_rows.append(alone)
    full, off, half = alone_rows
    assert (half - full).abs().max() > 1e-2 * full.abs().max()  # the factor reaches the residuals
    assert (half - off).abs().max() > 1e-2 * full.abs().max()
    with pytest.raises(ValueError, match="flow_scale has 2 entries for a batch of 3"):
        predict_noise(*models, *args, "object", flow_scale=[1.0, 1.0])
