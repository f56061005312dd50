"""Trajectory files of other tools: Wan-Move ``tracks.npy`` + ``visibility.npy`` and KJNodes ``coord_str``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imageconductor.trajectories import (
    TRAJECTORY_FORMATS,
    TrajectoryError,
    TrajectorySet,
    load_trajectories,
    resample_track,
    save_trajectories,
)
from imageconductor.trajectories.formats_wanmove import visibility_path_for

SIZE = (832, 480)


def _wanmove_files(folder: Path, tracks: np.ndarray, visibility: np.ndarray, stem: str = "") -> Path:
    """Write a tracks/visibility pair the way Wan-Move's app saves them (batch axis of 1)."""
    path = folder / f"{stem}tracks.npy"
    np.save(path, tracks[None].astype(np.float32))
    np.save(folder / f"{stem}visibility.npy", visibility[None].astype(bool))
    return path


def test_format_list_names_every_format() -> None:
    assert set(TRAJECTORY_FORMATS) == {"rich", "official", "wanmove", "kjnodes"}
    assert TRAJECTORY_FORMATS["wanmove"].suffix == ".npy"
    assert TRAJECTORY_FORMATS["rich"].records_frame and not TRAJECTORY_FORMATS["kjnodes"].records_frame


def test_visibility_sibling_names() -> None:
    assert visibility_path_for("a/tracks.npy") == Path("a/visibility.npy")
    assert visibility_path_for("clip_tracks.npy") == Path("clip_visibility.npy")
    assert visibility_path_for("x.npy") == Path("x_visibility.npy")


def test_wanmove_file_fills_invisible_frames_and_drops_unseen_tracks(tmp_path: Path) -> None:
    tracks = np.array(
        [
            [[100.0, 50.0], [10.0, 10.0], [5.0, 5.0]],
            [[np.nan, np.nan], [20.0, 10.0], [5.0, 5.0]],
            [[120.0, 90.0], [30.0, 10.0], [5.0, 5.0]],
            [[130.0, 100.0], [900.0, 10.0], [5.0, 5.0]],
        ]
    )  # (F=4, N=3, 2); track 1 leaves the 832-wide image in the last frame
    visible = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0]], dtype=bool)
    path = _wanmove_files(tmp_path, tracks, visible)
    trajectories = load_trajectories(path, image_size=SIZE)
    assert trajectories.image_size == SIZE and len(trajectories) == 2  # track 2 is never visible
    np.testing.assert_allclose(trajectories.tracks[0], [[100, 50], [110, 70], [120, 90], [130, 100]])
    # frame 0 held at the first visible point, frame 3 (outside the image) held at the last visible one
    np.testing.assert_allclose(trajectories.tracks[1], [[20, 10], [20, 10], [30, 10], [30, 10]])
    assert trajectories.kinds == ["object", "object"]
    assert load_trajectories(str(path), image_size=SIZE, default_kind="camera").kinds == ["camera"] * 2


def test_wanmove_without_batch_axis_and_without_visibility_file(tmp_path: Path) -> None:
    path = tmp_path / "drawn.npy"
    np.save(path, np.array([[[1.0, 2.0]], [[3.0, 4.0]]], dtype=np.float32))  # (F=2, N=1, 2)
    trajectories = load_trajectories(path, image_size=(64, 64), format="wanmove")
    np.testing.assert_allclose(trajectories.tracks[0], [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("tracks", "visibility", "message"),
    [
        (np.zeros((1, 4, 2, 3)), np.ones((1, 4, 2), bool), r"expected \(1, F, N, 2\)"),
        (np.zeros((2, 4, 2, 2)), np.ones((2, 4, 2), bool), "holds 2 clips"),
        (np.zeros((1, 4, 2, 2)), np.ones((1, 4, 3), bool), "does not match tracks of 4 frames and 2 tracks"),
        (np.full((1, 4, 2, 2), np.nan), np.ones((1, 4, 2), bool), "track 0, frame 0: .* not finite"),
        (np.zeros((1, 4, 2, 2)), np.full((1, 4, 2), 2), "other than 0 and 1"),
        (np.zeros((1, 4, 2, 2)), np.zeros((1, 4, 2), bool), "no track is visible"),
    ],
)
def test_wanmove_bad_files_are_trajectory_errors(
    tmp_path: Path, tracks: np.ndarray, visibility: np.ndarray, message: str
) -> None:
    np.save(tmp_path / "tracks.npy", tracks)
    np.save(tmp_path / "visibility.npy", visibility)
    with pytest.raises(TrajectoryError, match=message):
        load_trajectories(tmp_path / "tracks.npy", image_size=SIZE)


def test_wanmove_refuses_pickles_and_needs_a_frame(tmp_path: Path) -> None:
    np.save(tmp_path / "tracks.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TrajectoryError, match="cannot read tracks file"):
        load_trajectories(tmp_path / "tracks.npy", image_size=SIZE)
    np.save(tmp_path / "tracks.npy", np.zeros((1, 2, 1, 2), np.float32))
    with pytest.raises(TrajectoryError, match="pass image_size"):
        load_trajectories(tmp_path / "tracks.npy")
    with pytest.raises(TrajectoryError, match="not found"):
        load_trajectories(tmp_path / "missing_tracks.npy", image_size=SIZE)


def test_wanmove_round_trip(tmp_path: Path) -> None:
    original = TrajectorySet(
        [np.array([[10.25, 20.5], [30, 40], [50, 60]]), np.array([[700, 400], [710.75, 401], [720, 402]])],
        ["camera", "object"],
        [0.5, 1.0],
        SIZE,
    )
    path = save_trajectories(original, tmp_path / "clip_tracks.npy")
    assert np.load(path).shape == (1, 3, 2, 2) and np.load(path).dtype == np.float32
    visibility = np.load(tmp_path / "clip_visibility.npy")
    assert visibility.shape == (1, 3, 2) and visibility.dtype == bool and visibility.all()
    loaded = load_trajectories(path, image_size=SIZE)
    for got, want in zip(loaded.tracks, original.tracks, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert loaded.kinds == ["object", "object"]  # the format holds no kinds


def test_wanmove_export_resamples_tracks_of_different_lengths(tmp_path: Path) -> None:
    tracks = [np.array([[10.0, 10.0], [50.0, 30.0]]), np.array([[100.0, 100.0], [110, 90], [150, 60]])]
    path = save_trajectories(TrajectorySet(tracks, image_size=SIZE), tmp_path / "t.npy", num_frames=5)
    saved = np.load(path)[0]
    assert saved.shape == (5, 2, 2)
    np.testing.assert_allclose(saved[:, 0], resample_track(tracks[0], 5), atol=1e-4)
    np.testing.assert_allclose(saved[:, 1], resample_track(tracks[1], 5), atol=1e-4)
    default = np.load(save_trajectories(TrajectorySet(tracks, image_size=SIZE), tmp_path / "u.npy"))
    assert default.shape == (1, 3, 2, 2)  # the longest track's length


def test_kjnodes_coord_str_as_the_node_writes_it(tmp_path: Path) -> None:
    single = tmp_path / "one.json"
    single.write_text(json.dumps([{"x": 100, "y": 200}, {"x": 110, "y": 210}, {"x": 120, "y": 215}]))
    trajectories = load_trajectories(single, image_size=(512, 512))
    assert len(trajectories) == 1 and trajectories.image_size == (512, 512)
    np.testing.assert_array_equal(trajectories.tracks[0], [[100, 200], [110, 210], [120, 215]])
    several = '[[{"x": 1, "y": 2}, {"x": 3, "y": 4}], [{"x": 500, "y": 6}, {"x": 7, "y": 8}]]'
    two = load_trajectories(several, image_size=(512, 512))
    np.testing.assert_array_equal(two.tracks[1], [[500, 6], [7, 8]])
    python_style = "[{'x': 5, 'y': 6}, {'x': 7, 'y': 9}]"  # str() of the list, as older node versions wrote
    np.testing.assert_array_equal(
        load_trajectories(python_style, image_size=(64, 64)).tracks[0], [[5, 6], [7, 9]]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"x": 1}]', "track 0, point 0 has no 'y'"),
        ('[{"x": 1, "y": 2}, 3]', r"track 0, point 1 is not an object"),
        ('[{"x": 600, "y": 2}]', r"track 0, point 0: \(600, 2\) is outside the 512x512 image"),
        ('[{"x": NaN, "y": 2}]', "track 0, point 0: x is nan"),
        ('[[{"x": 1, "y": 2}], []]', "track 1 has no points"),
        ('[{"x": 1, "y": 2}', "invalid coord_str JSON"),
    ],
)
def test_kjnodes_bad_coord_str(text: str, message: str) -> None:
    with pytest.raises(TrajectoryError, match=message):
        load_trajectories(text, image_size=(512, 512), format="kjnodes")


def test_kjnodes_needs_a_frame() -> None:
    with pytest.raises(TrajectoryError, match="canvas"):
        load_trajectories('[{"x": 1, "y": 2}]')


def test_kjnodes_round_trip(tmp_path: Path) -> None:
    original = TrajectorySet(
        [np.array([[10.5, 20.25], [30, 40]]), np.array([[1, 2], [3, 4], [5.125, 6]])], image_size=(512, 320)
    )
    path = save_trajectories(original, tmp_path / "coords.json", format="kjnodes")
    data = json.loads(path.read_text())
    assert data[0] == [{"x": 10.5, "y": 20.25}, {"x": 30.0, "y": 40.0}]
    assert load_trajectories(path, image_size=(512, 320)) == original
    one = TrajectorySet([np.array([[1.0, 2.0], [3.0, 4.0]])], image_size=(8, 8))
    single = save_trajectories(one, tmp_path / "single.json", format="kjnodes")
    assert json.loads(single.read_text()) == [{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}]
    assert load_trajectories(single, image_size=(8, 8)) == one


@pytest.mark.parametrize("fmt", ["rich", "official"])
def test_json_formats_round_trip_by_name(tmp_path: Path, fmt: str) -> None:
    original = TrajectorySet([np.array([[1.5, 2.0], [30.0, 40.25]])], ["camera"], [2.0], (384, 256))
    path = save_trajectories(original, tmp_path / "t.json", format=fmt)
    loaded = load_trajectories(path, format=fmt)
    np.testing.assert_array_equal(loaded.tracks[0], original.tracks[0])
    assert loaded == original if fmt == "rich" else loaded.kinds == ["object"]


def test_explicit_format_must_match_the_content(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryError, match="rich trajectory file is an object"):
        load_trajectories("[[[1, 2]]]", format="rich")
    with pytest.raises(TrajectoryError, match="official trajectory file is a list"):
        load_trajectories('{"tracks": [[[1, 2]]]}', format="official")
    with pytest.raises(TrajectoryError, match="unknown trajectory format 'csv'"):
        load_trajectories("[[[1, 2]]]", format="csv")
    with pytest.raises(TrajectoryError, match="contradicts"):
        save_trajectories([[[1, 2]]], tmp_path / "t.json", official=True, format="rich")
