"""Camera presets move points in the named direction by the requested amount."""

from __future__ import annotations

import numpy as np
import pytest

from imageconductor.trajectories import (
    CAMERA_PRESETS,
    MAX_TRACKS,
    TrajectoryError,
    camera_preset,
    camera_trajectories,
    flow_condition,
)

PANS = {"pan_left": (-1, 0), "pan_right": (1, 0), "pan_up": (0, -1), "pan_down": (0, 1)}


def _assert_inside(tracks: list[np.ndarray], height: int, width: int) -> None:
    points = np.concatenate(tracks)
    assert points.min() >= 0 and points[:, 0].max() <= width - 1 and points[:, 1].max() <= height - 1


def _assert_uniform_straight_motion(track: np.ndarray) -> None:
    steps = np.diff(track, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-9)


@pytest.mark.parametrize("name", list(PANS))
@pytest.mark.parametrize("magnitude", [None, 30.0])
def test_pans_move_every_point_by_magnitude(name: str, magnitude: float | None) -> None:
    height, width, num_frames = 128, 200, 9
    tracks = camera_preset(name, num_frames=num_frames, height=height, width=width, magnitude=magnitude)
    direction = np.array(PANS[name], dtype=float)
    expected = magnitude if magnitude is not None else (width if direction[0] else height) / 6
    assert 1 < len(tracks) <= MAX_TRACKS
    for track in tracks:
        assert track.shape == (num_frames, 2)
        np.testing.assert_allclose(track[-1] - track[0], expected * direction, atol=1e-9)
        _assert_uniform_straight_motion(track)
    _assert_inside(tracks, height, width)


@pytest.mark.parametrize("zoom", [0.1, 0.5])
def test_zoom_in_moves_points_away_from_centre_in_proportion(zoom: float) -> None:
    height, width = 256, 384
    centre = np.array([width / 2, height / 2])
    tracks = camera_preset("zoom_in", magnitude=zoom)
    for track in tracks:
        start, end = track[0] - centre, track[-1] - centre
        np.testing.assert_allclose(end, (1 + zoom) * start, atol=1e-9)
        assert np.linalg.norm(end) > np.linalg.norm(start) > 1
    _assert_inside(tracks, height, width)
    distances = [np.linalg.norm(t[0] - centre) for t in tracks]
    assert max(distances) > 1.5 * min(distances)  # corners and edge midpoints: proportionality is tested


def test_zoom_out_is_the_reverse_of_zoom_in() -> None:
    centre = np.array([192.0, 128.0])
    zoom_out = camera_preset("zoom_out", magnitude=0.25, num_frames=5)
    for track in zoom_out:
        np.testing.assert_allclose(track[-1] - centre, (track[0] - centre) / 1.25, atol=1e-9)
        assert np.linalg.norm(track[-1] - centre) < np.linalg.norm(track[0] - centre)
    _assert_inside(zoom_out, 256, 384)


def test_combination_adds_pan_to_zoom() -> None:
    tracks = camera_preset("pan_left+zoom_in", magnitude={"pan_left": 40, "zoom_in": 0.2}, num_frames=16)
    centre = np.array([192.0, 128.0])
    for track in tracks:
        np.testing.assert_allclose(track[-1], centre + 1.2 * (track[0] - centre) + [-40, 0], atol=1e-9)
        _assert_uniform_straight_motion(track)
    inline = camera_preset("pan_left:40+zoom_in:0.2", num_frames=16)
    for a, b in zip(tracks, inline, strict=True):
        np.testing.assert_array_equal(a, b)
    diagonal = camera_preset("pan_up+pan_right", magnitude=20)
    for track in diagonal:
        np.testing.assert_allclose(track[-1] - track[0], [20, -20], atol=1e-9)


def test_large_motion_shrinks_the_layout_to_stay_inside() -> None:
    tracks = camera_preset("pan_right", magnitude=300, height=256, width=384)
    for track in tracks:
        np.testing.assert_allclose(track[-1] - track[0], [300, 0], atol=1e-9)
    _assert_inside(tracks, 256, 384)
    with pytest.raises(TrajectoryError, match="too far to fit"):
        camera_preset("pan_right", magnitude=400, height=256, width=384)


@pytest.mark.parametrize(
    ("name", "magnitude", "message"),
    [
        ("pan_sideways", None, "unknown camera preset 'pan_sideways'"),
        ("zoom_in+zoom_out", None, "zooms in and out"),
        ("pan_left+pan_right", None, "pans left and right"),
        ("pan_left+zoom_in", 30.0, "ambiguous"),
        ("pan_left", -5.0, "magnitude is -5.0"),
        ("pan_left", {"zoom_in": 0.1}, "does not contain"),
        ("pan_left:fast", None, "'fast' is not a number"),
        ("pan_left+pan_left", None, "appears twice"),
        ("", None, "camera preset name"),
    ],
)
def test_bad_preset_requests(name: str, magnitude: object, message: str) -> None:
    with pytest.raises(TrajectoryError, match=message):
        camera_preset(name, magnitude=magnitude)


def test_every_preset_drives_the_flow_condition_in_its_direction() -> None:
    for name in CAMERA_PRESETS:
        trajectories = camera_trajectories(name, num_frames=8, height=64, width=96)
        assert trajectories.kind == "camera" and trajectories.image_size == (96, 64)
        condition = flow_condition(trajectories, 8, 64, 96, blur_sigma=None)[0].numpy()
        dx, dy = condition[0].sum(), condition[1].sum()
        if name in PANS:
            sign = np.array(PANS[name])
            assert np.sign([dx, dy]).tolist() == sign.tolist(), name
        else:
            # Zoom: displacement points away from (in) or towards (out) the centre at every written pixel.
            frames, rows, columns = np.nonzero(np.any(condition != 0, axis=0))
            radial = (columns + 0.5 - 48) * condition[0, frames, rows, columns] + (
                rows + 0.5 - 32
            ) * condition[1, frames, rows, columns]
            assert (np.sign(radial) == (1 if name == "zoom_in" else -1)).all(), name
