"""The flow condition reproduces the released code's tensors stored in tests/fixtures/official_tiny."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from imageconductor.trajectories import (
    DEFAULT_IMAGE_SIZE,
    displacement_maps,
    flow_condition,
    load_trajectories,
    resample_track,
)

TOL = 1e-5  # README: max|yours - golden| <= tol * max|golden|


def assert_close(ours: np.ndarray, golden: np.ndarray, what: str) -> None:
    assert ours.shape == golden.shape, f"{what}: shape {ours.shape} != {golden.shape}"
    scale = np.abs(golden).max()
    error = np.abs(ours.astype(np.float64) - golden.astype(np.float64)).max()
    assert error <= TOL * scale, f"{what}: max error {error:.3g} > {TOL} x {scale:.3g}"


def read_tracks(official_dir: Path, stem: str) -> list:
    return json.loads((official_dir / "trajectories" / f"{stem}.json").read_text())


def test_every_small_condition_matches_golden(official_dir: Path, official_manifest: dict) -> None:
    goldens = load_file(official_dir / "trajectory_flows.safetensors")
    size = official_manifest["trajectory_size"]
    num_frames, height, width = size["L"], size["H"], size["W"]
    assert set(goldens) == set(official_manifest["files"]["trajectory_flows.safetensors"]["tensors"])
    for stem, golden in goldens.items():
        condition = flow_condition(read_tracks(official_dir, stem), num_frames, height, width)
        assert condition.dtype.is_floating_point and condition.element_size() == 4, stem
        assert_close(condition.numpy(), golden, stem)


def test_condition_from_loaded_file_matches_golden(official_dir: Path, official_manifest: dict) -> None:
    """The same files through load_trajectories (TrajectorySet input) give the same tensors."""
    goldens = load_file(official_dir / "trajectory_flows.safetensors")
    size = official_manifest["trajectory_size"]
    for stem in ("near_border", "overlapping_tracks", "mixed_five_tracks"):
        trajectories = load_trajectories(
            official_dir / "trajectories" / f"{stem}.json", image_size=(size["W"], size["H"])
        )
        condition = flow_condition(trajectories, size["L"], size["H"], size["W"])
        assert_close(condition.numpy(), goldens[stem], stem)


def _real_size_groups(goldens: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in goldens.items():
        stem, _, field = key.partition(".")
        groups.setdefault(stem, {})[field] = value
    return groups


def test_real_size_examples_match_golden(official_dir: Path) -> None:
    goldens = load_file(official_dir / "trajectory_flows_real_size.safetensors")
    groups = _real_size_groups(goldens)
    frame_shapes = [g["frame_8"].shape for g in groups.values() if "frame_8" in g]
    height, width = frame_shapes[0][-2:] if frame_shapes else DEFAULT_IMAGE_SIZE[::-1]
    assert groups, "no real-size goldens"
    for stem, golden in groups.items():
        tracks = read_tracks(official_dir, stem)
        num_frames = golden["abs_sum_per_frame"].shape[0]

        # Unblurred maps: the non-zero entries must be identical (frame, y, x) and (dx, dy).
        maps = displacement_maps([resample_track(t, num_frames) for t in tracks], height, width)
        frame, row, column = np.nonzero(np.any(maps != 0, axis=1))
        index = np.stack([frame, row, column], axis=1).astype(golden["sparse_index"].dtype)
        value = maps[frame, :, row, column].astype(golden["sparse_value"].dtype)
        np.testing.assert_array_equal(index, golden["sparse_index"], err_msg=f"{stem} sparse_index")
        np.testing.assert_array_equal(value, golden["sparse_value"], err_msg=f"{stem} sparse_value")

        condition = flow_condition(tracks, num_frames, height, width).numpy()
        abs_sum = np.abs(condition).sum(axis=(0, 1, 3, 4))
        assert_close(abs_sum, golden["abs_sum_per_frame"], f"{stem} abs_sum_per_frame")
        if "frame_8" in golden:
            assert_close(condition[:, :, 8], golden["frame_8"], f"{stem} frame_8")


def test_a_wrong_border_mode_would_be_caught(official_dir: Path, official_manifest: dict) -> None:
    """Guard that the near_border golden really pins the border handling (reflect-101, not zero padding)."""
    import cv2

    from imageconductor.trajectories import gaussian_kernel

    size = official_manifest["trajectory_size"]
    golden = load_file(official_dir / "trajectory_flows.safetensors")["near_border"]
    tracks = read_tracks(official_dir, "near_border")
    maps = displacement_maps([resample_track(t, size["L"]) for t in tracks], size["H"], size["W"])
    kernel = gaussian_kernel()
    zero_padded = np.stack(
        [[cv2.filter2D(p, -1, kernel, borderType=cv2.BORDER_CONSTANT) for p in frame] for frame in maps]
    )
    error = np.abs(zero_padded.astype(np.float32) - golden[0, :, 1:].transpose(1, 0, 2, 3)).max()
    assert error > 10 * TOL * np.abs(golden).max()


@pytest.mark.parametrize("stem", ["single_point", "two_points"])
def test_goldens_are_not_trivial(official_dir: Path, stem: str) -> None:
    golden = load_file(official_dir / "trajectory_flows.safetensors")[stem]
    assert np.abs(golden[:, :, 0]).max() == 0, "frame 0 must be the zero frame"
    assert np.abs(golden[:, :, 1:]).max() > 0
