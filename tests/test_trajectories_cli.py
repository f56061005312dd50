"""The ``imageconductor trajectories`` command (check, convert, preset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imageconductor.cli import main
from imageconductor.trajectories import load_trajectories


def test_check_summarises_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([[[10, 20], [30, 40]], [[5, 5]]]))
    assert main(["trajectories", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "2 track(s)" in out and "track 0: object, 2 point(s)" in out and "(10.0, 20.0) -> (30.0, 40.0)" in out
    )


def test_check_reports_bad_points_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([[[10, 20]], [[30, "x"]]]))
    assert main(["trajectories", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imageconductor: error: track 1, point 0: y is a string") and "Traceback" not in err


def test_convert_rescales_and_writes_official(tmp_path: Path) -> None:
    source, target = tmp_path / "t.json", tmp_path / "o.json"
    source.write_text(json.dumps({"image_size": [384, 256], "tracks": [{"points": [[96, 64], [192, 128]]}]}))
    assert (
        main(
            ["trajectories", "convert", str(source), "--out", str(target), "--to-size", "96x64", "--official"]
        )
        == 0
    )
    assert json.loads(target.read_text()) == [[[24.0, 16.0], [48.0, 32.0]]]


def test_preset_writes_a_camera_file(tmp_path: Path) -> None:
    target = tmp_path / "p.json"
    assert (
        main(
            ["trajectories", "preset", "pan_down", "--out", str(target), "--magnitude", "20", "--frames", "8"]
        )
        == 0
    )
    trajectories = load_trajectories(target)
    assert trajectories.kind == "camera" and len(trajectories) == 8
    for track in trajectories.tracks:
        np.testing.assert_allclose(track[-1] - track[0], [0, 20], atol=1e-9)
    assert main(["trajectories", "preset", "pan_down+zoom_in", "--out", str(target), "--magnitude", "3"]) == 2


def test_convert_reads_wanmove_and_writes_kjnodes_that_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tracks = (rng.uniform(0.05, 0.95, (1, 8, 3, 2)) * [384, 256]).astype(np.float32)  # inside the frame
    np.save(tmp_path / "clip_tracks.npy", tracks)
    np.save(tmp_path / "clip_visibility.npy", np.ones((1, 8, 3), bool))
    out = tmp_path / "spline.json"
    args = ["trajectories", "convert", str(tmp_path / "clip_tracks.npy"), "--size", "384x256"]
    assert main([*args, "--out", str(out), "--to", "kjnodes"]) == 0
    back = load_trajectories(out, format="kjnodes", image_size=(384, 256))
    for index in range(3):
        np.testing.assert_allclose(back.tracks[index], tracks[0, :, index], atol=1e-3)
    # without the frame size a Wan-Move file cannot be read: one line, exit 2
    assert main(["trajectories", "check", str(tmp_path / "clip_tracks.npy")]) == 2
