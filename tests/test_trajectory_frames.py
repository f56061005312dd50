"""One meaning for official trajectory files: drawn on the released 384x256 canvas, rescaled to the model's
frame by every reader of files; a plain list handed to the pipeline stays in pixels of the generated frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imageconductor.cli import main
from imageconductor.cli.common import CLIError, load_trajectory_file
from imageconductor.pipelines import load_trajectory_set

TRACKS = [[[96.0, 64.0], [192.0, 128.0], [288.0, 192.0]], [[380.0, 250.0], [10.0, 6.0]]]


@pytest.fixture
def official_file(tmp_path):
    path = tmp_path / "official.json"
    path.write_text(json.dumps(TRACKS))
    return path


def test_an_official_file_is_read_on_the_released_canvas_and_rescaled(official_file):
    model_frame = load_trajectory_set(official_file, 96, 64)
    assert model_frame.image_size == (96, 64)
    np.testing.assert_allclose(model_frame.tracks[0], [[24.0, 16.0], [48.0, 32.0], [72.0, 48.0]])
    np.testing.assert_allclose(model_frame.tracks[1], [[95.0, 62.5], [2.5, 1.5]])
    # The same file as JSON text means the same.
    assert load_trajectory_set(official_file.read_text(), 96, 64) == model_frame
    # At the released size nothing moves.
    np.testing.assert_array_equal(load_trajectory_set(official_file, 384, 256).tracks[0], TRACKS[0])


def test_another_source_frame_is_stated(official_file):
    frame = load_trajectory_set(official_file, 192, 128, source_size=(768, 512))
    np.testing.assert_allclose(frame.tracks[0], [[24.0, 16.0], [48.0, 32.0], [72.0, 48.0]])
    with pytest.raises(ValueError, match="outside the 100x100 image"):
        load_trajectory_set(official_file, 96, 64, source_size=(100, 100))


def test_a_plain_list_stays_in_pixels_of_the_generated_frame():
    tracks = [[[10.0, 20.0], [30.0, 40.0]]]
    frame = load_trajectory_set(tracks, 96, 64)
    assert frame.image_size == (96, 64)
    np.testing.assert_array_equal(frame.tracks[0], tracks[0])
    np.testing.assert_array_equal(load_trajectory_set(np.asarray(tracks), 96, 64).tracks[0], tracks[0])
    with pytest.raises(ValueError, match="outside the 96x64 image"):
        load_trajectory_set([[[100.0, 20.0], [30.0, 40.0]]], 96, 64)
    np.testing.assert_allclose(
        load_trajectory_set(tracks, 48, 32, source_size=(96, 64)).tracks[0], [[5, 10], [15, 20]]
    )


def test_a_rich_file_states_its_own_frame(tmp_path, official_file):
    rich = tmp_path / "rich.json"
    rich.write_text(json.dumps({"version": 1, "image_size": [384, 256], "tracks": TRACKS}))
    assert load_trajectory_set(rich, 96, 64) == load_trajectory_set(official_file, 96, 64)
    assert load_trajectory_set(rich, 96, 64, source_size=(1000, 1000)) == load_trajectory_set(rich, 96, 64)


def test_the_command_line_reads_files_the_same_way(official_file, tmp_path, capsys):
    assert load_trajectory_file(official_file, 96, 64) == load_trajectory_set(official_file, 96, 64)
    assert load_trajectory_file(official_file, 96, 64, (768, 512)).tracks[0][1].tolist() == [24.0, 16.0]
    with pytest.raises(CLIError, match="outside the 200x200 image"):
        load_trajectory_file(official_file, 96, 64, (200, 200))
    assert main(["trajectories", "check", str(official_file)]) == 0
    assert "frame 384x256" in capsys.readouterr().out


def test_the_shipped_examples_state_their_frame():
    from pathlib import Path

    from imageconductor.cli.common import __file__ as common_file

    examples = Path(common_file).resolve().parents[1] / "assets" / "examples"
    for path in sorted(examples.glob("*_trajectory.json")):
        data = json.loads(path.read_text())
        assert isinstance(data, dict) and data["image_size"] == [384, 256], path
