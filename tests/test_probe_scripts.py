"""The measuring helpers of the research probes (research/motion_direction_probe.py,
research/denoised_motion_probe.py, research/vae_reconstruction.py) and of ``imageconductor evaluate
synthetic``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "research"))

from denoised_motion_probe import clean_estimate  # noqa: E402
from motion_direction_probe import direction_summary, global_shift, summary_cells  # noqa: E402


def _textured_video(shift: tuple[int, int], frames: int = 4) -> np.ndarray:
    """A smooth random scene whose content moves by ``shift`` (dx, dy) pixels from first to last frame."""
    import cv2

    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (160, 200, 3)).astype(np.float32), (0, 0), 3)
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    video = []
    for index in range(frames):
        dx, dy = (round(value * index / (frames - 1)) for value in shift)
        # content moving by (+dx, +dy) = a crop window moving by (-dx, -dy)
        video.append(scene[40 - dy : 40 - dy + 64, 50 - dx : 50 - dx + 96])
    return np.stack(video)


@pytest.mark.parametrize("shift", [(6, 0), (-4, 3), (0, -5)])
def test_global_shift_measures_how_the_content_moves(shift):
    measured = global_shift(_textured_video(shift))
    assert np.allclose(measured, shift, atol=0.5), measured


def test_direction_summary_numbers():
    reference = np.array([[3.0, 4.0], [0.0, 2.0]])
    summary = direction_summary(np.array([[3.0, 4.0], [0.0, -2.0]]), reference)
    assert summary["length"] == pytest.approx(3.5)
    assert summary["error"] == pytest.approx(2.0)  # 0 and 4, averaged
    assert summary["cosine"] == pytest.approx(0.0)  # +1 and -1
    assert summary["failed"] == 0


def test_a_black_video_has_no_measured_shift_and_summaries_leave_it_out():
    assert np.isnan(global_shift(np.zeros((4, 64, 96, 3), dtype=np.uint8))).all()  # no peak: (48, 32) before
    reference = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    shifts = np.array([[3.0, 4.0], [np.nan, np.nan], [0.0, -2.0]])
    summary = direction_summary(shifts, reference)
    assert summary["failed"] == 1
    assert summary["length"] == pytest.approx(3.5)  # 5 and 2: the unmeasured clip is not a zero shift
    assert summary["cosine"] == pytest.approx(0.5)  # +1 and 0
    assert "1 clips unmeasured" in summary_cells(summary)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_clean_estimate_inverts_the_noising(prediction_type):
    scheduler = DDIMScheduler(prediction_type=prediction_type, rescale_betas_zero_snr=False)
    generator = torch.Generator().manual_seed(0)
    clean = torch.randn(2, 4, 3, 5, 6, generator=generator)
    noise = torch.randn(clean.shape, generator=generator)
    for timestep in (10, 500, 990):
        steps = torch.full((2,), timestep)
        noisy = scheduler.add_noise(clean, noise, steps)
        target = scheduler.get_velocity(clean, noise, steps) if prediction_type == "v_prediction" else noise
        assert torch.allclose(clean_estimate(scheduler, noisy, target, timestep), clean, atol=1e-3)


def test_clip_settings_read_the_model_config_and_take_overrides(tmp_path):
    import argparse

    from motion_direction_probe import clip_settings

    from imageconductor.pipelines import write_model_settings

    (tmp_path / "model_index.json").write_text("{}")
    args = argparse.Namespace(texture_scale=None, motion_scale=2.0)  # no sprite_scale: the model's
    world = {"texture_scale": 1.0, "motion_scale": 2.0, "sprite_scale": 1.0}
    assert clip_settings(tmp_path, args) == (16, 256, 384, world)
    write_model_settings(
        tmp_path,
        native_size={"num_frames": 8, "height": 64, "width": 96},
        synthetic_world={"texture_scale": 3.0, "motion_scale": 3.0, "sprite_scale": 2.0, "seed": 0},
    )
    world = {"texture_scale": 3.0, "motion_scale": 2.0, "sprite_scale": 2.0}
    assert clip_settings(tmp_path, args) == (8, 64, 96, world)


def test_dense_condition_points_the_way_the_clip_moves():
    from motion_direction_probe import dense_condition

    from imageconductor.evaluation.cases import synthetic_clip_suite
    from imageconductor.trajectories import FlowEncoding

    world = {"texture_scale": 3.0, "motion_scale": 3.0}
    encoding = FlowEncoding(blur_sigma=None)
    _, cases = synthetic_clip_suite("camera", range(10_000, 10_006), 8, 96, 64, **world)
    panning = agree = 0
    for seed, case in zip(range(10_000, 10_006), cases, strict=True):
        condition = dense_condition(seed, encoding, 8, 64, 96, world)[0]  # (2, F, H, W), unblurred
        assert condition.shape == (2, 8, 64, 96) and torch.count_nonzero(condition[:, 0]) == 0
        total = condition.sum(dim=(1, 2, 3)).numpy()  # summed (dx, dy) of every track step
        shift = global_shift(case.reference)
        if np.linalg.norm(shift) > 2:  # zoom-only clips barely shift
            panning += 1
            agree += int(np.dot(total, shift) > 0.5 * np.linalg.norm(total) * np.linalg.norm(shift))
    assert panning >= 3 and agree == panning


def test_card_command_keeps_the_settings_and_leaves_out_local_folders():
    from imageconductor.cli.entry import build_parser
    from imageconductor.cli.evaluate import card_command

    args = build_parser().parse_args(
        [
            "evaluate",
            "synthetic",
            "--seeds",
            "10000:10016",
            "--guidance-scale",
            "1",
            "--motion-guidance",
            "2",
            "--ablation",
            "no-ortho=/work/b/no-ortho",
            "--ablation",
            "sparse-only=/work/b/sparse@none",
            "--out",
            "/work/b/eval",
            "--update-card",
        ]
    )
    assert card_command(args) == (
        "imageconductor evaluate synthetic --seeds 10000:10016 --guidance-scale 1 --motion-guidance 2 "
        "--ablation no-ortho=DIR1 --ablation sparse-only=DIR2@none --update-card"
    )


class _FakeVae:
    """A stand-in VAE: ``encode`` keeps the frames as they are, ``decode`` passes them through ``draw``."""

    def __init__(self, draw) -> None:
        self.draw = draw

    def encode(self, frames):
        from types import SimpleNamespace

        return SimpleNamespace(latent_dist=SimpleNamespace(mean=frames))

    def decode(self, latents):
        from types import SimpleNamespace

        return SimpleNamespace(sample=self.draw(latents))


def test_motion_floor_scores_what_the_vae_draws(tmp_path):
    from vae_reconstruction import motion_floor

    from imageconductor.evaluation.cases import synthetic_clip_suite
    from imageconductor.evaluation.runner import run_suite

    seeds, size, world = range(10_000, 10_001), (8, 64, 96), {"texture_scale": 3.0, "motion_scale": 3.0}
    lossless = motion_floor(_FakeVae(lambda x: x), seeds, *size, world, tmp_path / "lossless")
    frozen = motion_floor(_FakeVae(lambda x: x[:1].expand_as(x)), seeds, *size, world, tmp_path / "frozen")
    for kind in ("object", "camera"):
        suite, cases = synthetic_clip_suite(kind, seeds, 8, 96, 64, **world)
        exact = run_suite(
            suite, lambda case: case.reference, cases, tmp_path / "exact", label=kind, progress=False
        )
        still = run_suite(
            suite,
            lambda case: np.repeat(case.image[None], 8, 0),
            cases,
            tmp_path / "still",
            label=kind,
            progress=False,
        )
        # a lossless VAE scores the exact clip; one that draws the first frame throughout scores a still video
        assert lossless[kind] == pytest.approx(exact.summary()["motion_error_px"], abs=1e-6)
        assert frozen[kind] == pytest.approx(still.summary()["motion_error_px"], abs=1e-6)
        assert frozen[kind] > lossless[kind] + 0.5
