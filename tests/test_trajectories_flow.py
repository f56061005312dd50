"""Resampling, displacement maps, blur and the flow condition beyond the golden files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imageconductor.trajectories import (
    TrajectoryError,
    TrajectorySet,
    blur_parameters,
    displacement_maps,
    displacement_maps_from_dense,
    flow_condition,
    flow_condition_from_dense,
    gaussian_blur_maps,
    gaussian_kernel,
    resample_track,
)


def test_resample_passes_through_points_and_keeps_ends() -> None:
    track = np.array([[3.0, 4.0], [10.0, 2.0], [12.5, 9.0], [20.0, 9.5]])
    np.testing.assert_allclose(resample_track(track, 4), track, rtol=0, atol=1e-12)
    resampled = resample_track(track, 16)
    assert resampled.shape == (16, 2)
    np.testing.assert_allclose(resampled[[0, -1]], track[[0, -1]], atol=1e-12)
    # Shape preserving: x increases monotonically, no overshoot past the data range.
    assert np.all(np.diff(resampled[:, 0]) > 0)
    assert resampled[:, 1].min() >= 2.0 - 1e-12 and resampled[:, 1].max() <= 9.5 + 1e-12


def test_resample_two_points_is_linear_and_one_point_drifts_one_pixel() -> None:
    np.testing.assert_allclose(
        resample_track([[0, 0], [14, 7]], 8), np.outer(np.arange(8), [2, 1]), atol=1e-12
    )
    single = resample_track([[5.5, 7.25]], 5)
    np.testing.assert_allclose(single, [[5.5 + k / 4, 7.25 + k / 4] for k in range(5)], atol=1e-12)


def test_resample_rejects_bad_frame_counts() -> None:
    for bad in (1, 0, 2.5, True):
        with pytest.raises(TrajectoryError, match="num_frames"):
            resample_track([[1, 2]], bad)


def test_displacement_written_at_truncated_start_pixel() -> None:
    maps = displacement_maps([[[2.9, 1.2], [5.0, 4.0], [5.5, 4.0]]], 8, 10)
    assert maps.shape == (2, 2, 8, 10) and maps.dtype == np.float64
    np.testing.assert_allclose(maps[0, :, 1, 2], [5.0 - 2.9, 4.0 - 1.2])
    np.testing.assert_allclose(maps[1, :, 4, 5], [0.5, 0.0])
    assert np.count_nonzero(maps) == 3  # exactly those entries (dy of frame 1 is 0)


def test_later_track_overwrites_and_nothing_is_summed() -> None:
    first = [[10.2, 10.2], [20.0, 10.2]]
    second = [[10.7, 10.9], [10.7, 30.0]]
    maps = displacement_maps([first, second], 40, 40)
    np.testing.assert_allclose(maps[0, :, 10, 10], [0.0, 30.0 - 10.9])
    maps = displacement_maps([second, first], 40, 40)
    np.testing.assert_allclose(maps[0, :, 10, 10], [20.0 - 10.2, 0.0])
    # A stationary later track writes its zero over an earlier displacement.
    maps = displacement_maps([first, [[10.5, 10.5], [10.5, 10.5]]], 40, 40)
    assert np.count_nonzero(maps) == 0


def test_out_of_bounds_start_points_clip_or_skip() -> None:
    edge = [[10.0, 8.0], [10.0, 4.0]]  # x on the far edge of a 10-wide image: truncates to column 10
    clipped = displacement_maps([edge], 8, 10)
    np.testing.assert_allclose(clipped[0, :, 8 - 1, 10 - 1], [0.0, -4.0])
    assert np.count_nonzero(displacement_maps([edge], 8, 10, out_of_bounds="skip")) == 0
    with pytest.raises(TrajectoryError, match="out_of_bounds"):
        displacement_maps([edge], 8, 10, out_of_bounds="wrap")
    with pytest.raises(TrajectoryError, match="not a numeric"):
        displacement_maps([edge, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]], 8, 10)


def test_single_point_on_the_edge_does_not_crash() -> None:
    """The released code indexes out of range here; points are validated, so clipping keeps it safe."""
    condition = flow_condition([[[95.5, 63.5]]], 8, 64, 96, blur_sigma=None)
    written = condition[0, :, 1:].abs().sum(dim=0) > 0
    assert written.sum() == 7  # one displacement per step, all on the border pixel or its neighbour
    assert written[:, 62:, 94:].sum() == 7


def test_flow_condition_layout_and_zero_first_frame() -> None:
    condition = flow_condition([[[10.0, 20.0], [30.0, 25.0]]], 6, 40, 48, blur_sigma=None)
    assert condition.shape == (1, 2, 6, 40, 48) and condition.dtype == torch.float32
    assert condition[:, :, 0].abs().max() == 0
    # frame t holds the (t-1 -> t) step of 4 px in x and 1 px in y, at the start pixel of that step.
    for frame in range(1, 6):
        x, y = 10.0 + 4 * (frame - 1), 20.0 + (frame - 1)
        torch.testing.assert_close(condition[0, :, frame, int(y), int(x)], torch.tensor([4.0, 1.0]))


def test_flow_condition_validates_points_against_the_target_size() -> None:
    with pytest.raises(TrajectoryError, match=r"track 1, point 0: \(100, 5\) is outside the 96x64 image"):
        flow_condition([[[1, 1]], [[100, 5], [1, 1]]], 8, 64, 96)
    with pytest.raises(TrajectoryError, match="num_frames"):
        flow_condition([[[1, 1]]], 1, 64, 96)
    with pytest.raises(TrajectoryError, match="height"):
        flow_condition([[[1, 1]]], 8, 0, 96)


def test_trajectory_set_is_rescaled_and_strengths_applied() -> None:
    model_frame = TrajectorySet([[[100.0, 50.0], [300.0, 200.0]]], strengths=[2.0], image_size=(384, 256))
    condition = flow_condition(model_frame, 8, 64, 96)
    by_hand = flow_condition([[[25.0, 12.5], [75.0, 50.0]]], 8, 64, 96)
    torch.testing.assert_close(condition, 2.0 * by_hand, rtol=1e-6, atol=0)
    half = flow_condition(model_frame, 8, 64, 96, strengths=[0.5])
    torch.testing.assert_close(half, 0.5 * by_hand, rtol=1e-6, atol=0)


def test_gaussian_kernel_is_the_official_one() -> None:
    kernel = gaussian_kernel()
    assert kernel.shape == (99, 99)
    offsets = np.arange(-49, 50)
    expected = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 10.0**2))
    np.testing.assert_allclose(kernel, expected / expected.sum(), rtol=1e-12, atol=0)
    assert abs(kernel[49, 49] - 0.0016) < 1e-4
    with pytest.raises(TrajectoryError, match="odd"):
        gaussian_kernel(98, 10.0)


def test_blur_conserves_an_interior_impulse_and_spreads_it_by_sigma() -> None:
    maps = np.zeros((1, 2, 201, 201))
    maps[0, 0, 100, 100] = 3.0
    blurred = gaussian_blur_maps(maps)
    assert blurred[0, 0].sum() == pytest.approx(3.0, rel=1e-9)
    assert np.abs(blurred[0, 1]).max() == 0
    profile = blurred[0, 0].sum(axis=0) / 3.0
    variance = (profile * (np.arange(201) - 100.0) ** 2).sum()
    assert variance == pytest.approx(100.0, rel=0.01)


def test_auto_blur_scales_with_resolution() -> None:
    assert blur_parameters(256, 384) == (10.0, 99)
    assert blur_parameters(256, 384, "auto") == (10.0, 99)
    assert blur_parameters(512, 768, "auto") == (20.0, 197)
    assert blur_parameters(64, 96, "auto") == (2.5, 25)
    assert blur_parameters(64, 384, "auto") == (2.5, 25)  # the smaller ratio wins
    assert blur_parameters(64, 96, None) is None
    with pytest.raises(TrajectoryError, match="blur_sigma"):
        blur_parameters(64, 96, "big")
    tracks = [[[40.0, 30.0], [60.0, 34.0]]]
    official = flow_condition(tracks, 4, 256, 384)
    torch.testing.assert_close(
        flow_condition(tracks, 4, 256, 384, blur_sigma="auto"), official, rtol=0, atol=0
    )
    small = flow_condition(tracks, 4, 64, 96, blur_sigma="auto")
    assert small[0, 0, 1].max() > 10 * flow_condition(tracks, 4, 64, 96)[0, 0, 1].max()


def test_dense_equals_flow_condition_for_tracks_already_one_point_per_frame() -> None:
    rng = np.random.default_rng(3)
    num_frames, height, width = 10, 48, 64
    tracks = rng.uniform([0, 0], [width - 1, height - 1], size=(5, num_frames, 2))
    expected = flow_condition(list(tracks), num_frames, height, width)
    dense = flow_condition_from_dense(tracks.transpose(1, 0, 2), height, width)
    assert dense.shape == (1, 2, num_frames, height, width)
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-6 * float(expected.abs().max()))


def test_dense_skips_invisible_steps_and_points_outside() -> None:
    nan = np.nan
    tracks = np.array(
        [
            [[1.0, 1.0], [5.0, 5.0], [70.0, 5.0]],
            [[2.0, 1.0], [6.0, 7.0], [12.0, 5.0]],
            [[3.0, 1.0], [nan, nan], [13.0, 6.0]],
            [[4.0, 1.0], [8.0, 8.0], [13.0, 6.0]],
        ]
    )  # (T=4, N=3, 2); track 1 is invisible in frame 2, track 2 starts outside the 16x16 image
    visible = np.ones((4, 3), dtype=bool)
    visible[2, 1] = False
    maps = displacement_maps_from_dense(tracks, 16, 16, visible)
    expected = {
        (0, 1, 1): (1, 0),
        (0, 5, 5): (1, 2),
        (1, 1, 2): (1, 0),
        (1, 5, 12): (1, 1),
        (2, 1, 3): (1, 0),
    }
    frames, rows, columns = np.nonzero(np.any(maps != 0, axis=1))
    assert set(zip(frames.tolist(), rows.tolist(), columns.tolist(), strict=True)) == set(expected)
    for (frame, row, column), value in expected.items():
        np.testing.assert_allclose(maps[frame, :, row, column], value)
    clipped = displacement_maps_from_dense(tracks, 16, 16, visible, out_of_bounds="clip")
    np.testing.assert_allclose(clipped[0, :, 5, 15], [12.0 - 70.0, 0.0])


def test_dense_rejects_non_finite_visible_points() -> None:
    tracks = np.zeros((3, 2, 2))
    tracks[1, 1] = np.nan
    with pytest.raises(TrajectoryError, match="track 1, frame 1: position is not finite"):
        flow_condition_from_dense(tracks, 8, 8)
    with pytest.raises(TrajectoryError, match="shape"):
        flow_condition_from_dense(np.zeros((1, 2, 2)), 8, 8)
    with pytest.raises(TrajectoryError, match="visibility"):
        flow_condition_from_dense(np.zeros((3, 2, 2)), 8, 8, visibility=np.ones((3, 3), dtype=bool))


def test_peak_normalised_encoding_keeps_a_point_displacement_at_its_pixel() -> None:
    from imageconductor.trajectories import FlowEncoding

    track = [[[40.0, 30.0], [46.0, 28.0]]]  # one step of (+6, -2) written at pixel (30, 40)
    encoding = FlowEncoding(blur_sigma=2.5, kernel_size=25, kernel_normalization="peak")
    condition = flow_condition(track, 2, 64, 96, **encoding.as_kwargs())[0, :, 1]
    np.testing.assert_allclose(condition[:, 30, 40].numpy(), [6.0, -2.0], rtol=1e-6)
    assert condition.abs().amax().item() == pytest.approx(6.0, rel=1e-6)
    # The same blur summing to 1 is smaller by the kernel's centre value, 1 / sum(peak kernel).
    summed = flow_condition(track, 2, 64, 96, blur_sigma=2.5, kernel_size=25)[0, :, 1]
    ratio = gaussian_kernel(25, 2.5, "peak").sum()
    torch.testing.assert_close(summed * ratio, condition, rtol=1e-5, atol=1e-6)
    assert FlowEncoding().is_official and not encoding.is_official
    assert FlowEncoding.from_dict(None) == FlowEncoding()
    assert FlowEncoding.from_dict(encoding.as_kwargs()) == encoding


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kernel_normalization": "max"}, "normalization"),
        ({"kernel_size": 24}, "odd"),
        ({"blur_sigma": "wide"}, "blur_sigma"),
        ({"sigma": 2.0}, "unknown flow encoding key"),
    ],
)
def test_bad_flow_encodings_are_named(settings, message) -> None:
    from imageconductor.trajectories import FlowEncoding

    with pytest.raises(TrajectoryError, match=message):
        FlowEncoding.from_dict(settings)
