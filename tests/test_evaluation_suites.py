"""The built-in camera and object evaluation suites: 10 + 10 valid trajectory sets matching their names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imageconductor.evaluation.motion_metrics import resample_tracks
from imageconductor.evaluation.suites import (
    SuiteError,
    build_camera_suite,
    build_object_suite,
    load_suite,
    write_suite,
)


@pytest.fixture(scope="module")
def camera_suite():
    return load_suite("camera")


@pytest.fixture(scope="module")
def object_suite():
    return load_suite("object")


def _resampled(entry) -> np.ndarray:
    return resample_tracks(entry.trajectories, 16, 384, 256)  # (16, K, 2)


def test_suites_hold_ten_valid_sets_each(camera_suite, object_suite):
    for suite, kind in ((camera_suite, "camera"), (object_suite, "object")):
        assert len(suite) == 10
        assert suite.kind == kind
        assert len({entry.name for entry in suite}) == 10
        for entry in suite:
            assert entry.trajectories.image_size == (384, 256)
            assert set(entry.trajectories.kinds) == {kind}
            assert 1 <= len(entry.trajectories) <= 8
            assert entry.description


def test_stored_files_are_what_the_builders_make(camera_suite, object_suite):
    for stored, built in ((camera_suite, build_camera_suite()), (object_suite, build_object_suite())):
        assert [e.name for e in stored] == [e.name for e in built]
        for a, b in zip(stored, built, strict=True):
            assert len(a.trajectories) == len(b.trajectories)
            for ta, tb in zip(a.trajectories.tracks, b.trajectories.tracks, strict=True):
                np.testing.assert_allclose(ta, tb, atol=1e-3)


def _mean_shift(entry) -> np.ndarray:
    tracks = _resampled(entry)
    return (tracks[-1] - tracks[0]).mean(axis=0)


def _spread_ratio(entry, frame: int = -1) -> float:
    tracks = _resampled(entry)
    spread = np.linalg.norm(tracks - tracks.mean(axis=1, keepdims=True), axis=-1).mean(axis=1)
    return float(spread[frame] / spread[0])


def test_camera_trajectories_move_as_their_names_say(camera_suite):
    dx, dy = _mean_shift(camera_suite["pan_left"])
    assert dx < -30 and abs(dy) < 1e-6
    dx, dy = _mean_shift(camera_suite["pan_right"])
    assert dx > 30 and abs(dy) < 1e-6
    dx, dy = _mean_shift(camera_suite["pan_up"])
    assert dy < -20 and abs(dx) < 1e-6
    dx, dy = _mean_shift(camera_suite["pan_down"])
    assert dy > 20 and abs(dx) < 1e-6
    dx, dy = _mean_shift(camera_suite["pan_left_up"])
    assert dx < -20 and dy < -20
    assert _spread_ratio(camera_suite["zoom_in"]) > 1.15
    assert _spread_ratio(camera_suite["zoom_out"]) < 0.87
    assert _spread_ratio(camera_suite["pan_right_zoom_in"]) > 1.15
    assert _mean_shift(camera_suite["pan_right_zoom_in"])[0] > 20
    there_and_back = _resampled(camera_suite["pan_down_then_up"])
    np.testing.assert_allclose(there_and_back[-1], there_and_back[0], atol=1e-3)
    assert (there_and_back[8, :, 1] - there_and_back[0, :, 1]).min() > 20
    assert _spread_ratio(camera_suite["zoom_in_then_out"], 8) > 1.1
    assert _spread_ratio(camera_suite["zoom_in_then_out"]) == pytest.approx(1.0, abs=1e-3)


def test_object_trajectories_cover_lines_curves_shakes_and_combinations(object_suite):
    line = _resampled(object_suite["line_right"])[:, 0]
    np.testing.assert_allclose(line[:, 1], line[0, 1])
    assert np.all(np.diff(line[:, 0]) > 0)
    arc = _resampled(object_suite["arc"])[:, 0]
    assert arc[:, 1].min() < arc[0, 1] - 30  # bulges upwards
    shake = _resampled(object_suite["shake_in_place"])[:, 0]
    assert np.sum(np.diff(np.sign(np.diff(shake[:, 0]))) != 0) >= 3  # changes direction repeatedly
    crossing = _resampled(object_suite["two_objects_crossing"])
    assert crossing.shape[1] == 2
    assert np.sign(crossing[-1, 0, 0] - crossing[0, 0, 0]) == -np.sign(crossing[-1, 1, 0] - crossing[0, 1, 0])
    anchored = object_suite["line_then_curve_with_anchor"].trajectories
    assert [len(t) for t in anchored.tracks][1] == 1  # a single-point (stationary) track
    # Speeds stay in the trackable range of the official examples (<= 10 px per frame at 16 frames).
    for entry in object_suite:
        steps = np.linalg.norm(np.diff(_resampled(entry), axis=0), axis=-1)
        assert steps.max() <= 10.0, entry.name


def test_a_custom_folder_loads_and_bad_folders_fail_clearly(tmp_path, camera_suite):
    folder = tmp_path / "mine"
    write_suite(list(camera_suite.entries[:3]), folder, "camera")
    suite = load_suite(folder)
    assert (suite.name, suite.kind, len(suite)) == ("mine", "camera", 3)
    assert [e.name for e in suite] == ["pan_left", "pan_right", "pan_up"]
    with pytest.raises(SuiteError, match="expected 10"):
        load_suite(folder, expected_size=10)

    (folder / "04_broken.json").write_text(json.dumps({"tracks": [[[1.0, 2.0], [1e9, 3.0]]]}))
    with pytest.raises(SuiteError, match="04_broken.json.*track 0, point 1"):
        load_suite(folder)
    (folder / "04_broken.json").write_text(
        json.dumps({"kind": "object", "tracks": [[[1.0, 2.0], [5.0, 3.0]]]})
    )
    with pytest.raises(SuiteError, match="mixes kinds"):
        load_suite(folder)
    with pytest.raises(SuiteError, match="not found"):
        load_suite(tmp_path / "absent")
    with pytest.raises(SuiteError, match="no .json"):
        load_suite(tmp_path)
