"""The strip image (``generate --strip FILE.png``): evenly spaced frames side by side, the tracks drawn as
arrows up to each frame's time over a row of the frames as generated; written with the other outputs, all
or nothing; bad ``--strip`` / ``--strip-frames`` refused before any weights load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imageconductor.cli.common as common
import imageconductor.cli.generate as generate
import imageconductor.video_outputs as video_outputs
from imageconductor.cli import main
from imageconductor.overlay import strip_frame_indices, strip_scale, track_colors, trajectory_strip
from imageconductor.pipelines import default_model_path
from imageconductor.trajectories import TrajectorySet

EXAMPLES = Path(common.__file__).resolve().parents[1] / "assets" / "examples"
COLORS = [(255, 0, 0), (0, 255, 0)]


def _strip_size(count: int, rows: int, height: int, width: int, gap: int = 4) -> tuple[int, int]:
    scale = strip_scale(height)
    return (rows * height * scale + (rows - 1) * gap, count * width * scale + (count - 1) * gap)


def test_strip_frames_are_evenly_spaced_from_the_first_to_the_last():
    assert strip_frame_indices(8, 8) == list(range(8))
    assert strip_frame_indices(16, 8) == [0, 2, 4, 6, 9, 11, 13, 15]
    assert strip_frame_indices(8, 4) == [0, 2, 5, 7]
    assert strip_frame_indices(8, 1) == [0]
    for bad in (0, 9):
        with pytest.raises(ValueError, match="1 to 8 frames"):
            strip_frame_indices(8, bad)
    assert strip_scale(64) == 2 and strip_scale(48) == 3 and strip_scale(256) == 1


def test_the_strip_draws_each_track_up_to_each_frames_time_over_the_plain_frames():
    frames = np.zeros((8, 48, 64, 3), dtype=np.uint8)
    frames[:, :, :, 2] = np.arange(8, dtype=np.uint8)[:, None, None] * 10  # tell the frames apart
    moving = np.stack([np.linspace(8, 52, 8), np.linspace(8, 36, 8)], axis=1)  # (8,8) -> (52,36)
    still = np.array([[40.0, 10.0]] * 8)
    strip = trajectory_strip(frames, [moving, still], 4, colors=COLORS)
    assert strip.shape == (*_strip_size(4, 2, 48, 64), 3) == (292, 780, 3)
    scale, gap = 3, 4
    panel_h, panel_w = 48 * scale, 64 * scale

    def panel(row: int, column: int) -> np.ndarray:
        top, left = row * (panel_h + gap), column * (panel_w + gap)
        return strip[top : top + panel_h, left : left + panel_w]

    def at(point) -> tuple[int, int]:  # a frame point in the enlarged panel: (row, column)
        x, y = point
        return round(y * scale + 1), round(x * scale + 1)

    end, start = at(moving[-1]), at(moving[0])
    # the last panel (frame 7): the moving track's dot sits on its end point, its path behind it
    last = panel(0, 3)
    assert tuple(last[end]) == COLORS[0]
    assert tuple(last[at(moving[4])]) == COLORS[0]
    assert tuple(last[at(still[0])]) == COLORS[1]
    # an arrowhead: track-coloured pixels just behind the end point on both sides of the path
    behind = np.array(end) - np.array([4, 7])  # back along the path, (row, column)
    near = last[behind[0] - 6 : behind[0] + 7, behind[1] - 6 : behind[1] + 7]
    assert (near == COLORS[0]).all(axis=-1).sum() > 10
    # the first panel (frame 0): the track has not moved yet: a dot at its start, nothing at its end
    first = panel(0, 0)
    assert tuple(first[start]) == COLORS[0]
    assert tuple(first[end]) == (0, 0, 0)
    assert tuple(first[at(moving[4])]) == (0, 0, 0)
    # the frame 2 panel (the second): the path reaches the third point, not the fifth
    second = panel(0, 1)
    assert tuple(second[at(moving[2])]) == COLORS[0]
    assert not (second[at(moving[4])] == COLORS[0]).all()
    # the frame index label in the top-left corner, white over black
    assert (first[:20, :20] == 255).all(axis=-1).any()
    assert not (panel(1, 0)[:20, :20] == 255).all(axis=-1).any()
    # the second row: the frames as generated (enlarged, pixel for pixel), nothing drawn
    for column, index in enumerate(strip_frame_indices(8, 4)):
        assert (panel(1, column) == frames[index, 0, 0]).all()
    # the gaps are white
    assert (strip[panel_h : panel_h + gap] == 255).all()
    assert (strip[:, panel_w : panel_w + gap] == 255).all()
    # one row without the plain frames
    assert trajectory_strip(frames, [moving, still], 8, plain_row=False).shape == (
        *_strip_size(8, 1, 48, 64),
        3,
    )


def test_the_strip_is_written_with_the_other_outputs_or_not_at_all(tmp_path, monkeypatch):
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    tracks = TrajectorySet([np.array([[2.0, 2.0], [40.0, 20.0]])], image_size=(48, 32))
    strip = tmp_path / "pictures" / "strip.png"
    strip.parent.mkdir()

    def broken(*args, **kwargs):
        raise RuntimeError("the side-by-side failed")

    monkeypatch.setattr(video_outputs, "side_by_side", broken)
    with pytest.raises(RuntimeError, match="side-by-side failed"):
        video_outputs.write_generation_outputs(frames, tracks, tmp_path / "clip.mp4", strip=strip)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["pictures"]
    monkeypatch.undo()
    written = video_outputs.write_generation_outputs(
        frames, tracks, tmp_path / "clip.mp4", strip=strip, strip_frames=3
    )
    assert written["strip"] == strip
    image = np.asarray(Image.open(strip))
    assert image.shape == (*_strip_size(3, 2, 32, 48), 3)
    # every frame of a video shorter than the default count
    video_outputs.write_generation_outputs(frames, tracks, tmp_path / "clip.mp4", strip=strip)
    assert np.asarray(Image.open(strip)).shape == (*_strip_size(6, 2, 32, 48), 3)
    assert sorted(p.name for p in strip.parent.iterdir()) == ["strip.png"]


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if ``generate`` gets as far as loading weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded before the bad input was refused")

    monkeypatch.setattr(common, "load_pipeline", refuse)
    monkeypatch.setattr(generate, "load_pipeline", refuse)


def _generate(out: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "--image",
        str(EXAMPLES / "object_first_frame.png"),
        "--prompt",
        (EXAMPLES / "object_prompt.txt").read_text().strip(),
        "--trajectories",
        str(EXAMPLES / "object_trajectory.json"),
        "--out",
        str(out),
        "--seed",
        "0",
        *extra,
    ]


BAD_STRIP = [
    (["--strip", "strip.jpg"], "--strip must end in .png"),
    (["--strip", "/nonexistent-imageconductor/strip.png"], "(/nonexistent-imageconductor) does not exist"),
    (["--strip", "/proc/strip.png"], "cannot write strip.png into /proc"),
    (["--strip", "strip.png", "--strip-frames", "0"], "--strip-frames: expected a positive integer"),
    (["--strip", "strip.png", "--strip-frames", "x"], "--strip-frames: expected a positive integer"),
    (["--strip", "strip.png", "--strip-frames", "9"], "--strip-frames must be at most the video's 8 frames"),
    (["--strip-frames", "3"], "--strip-frames needs --strip FILE.png"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_STRIP, ids=[" ".join(e) for e, _ in BAD_STRIP])
def test_bad_strip_arguments_fail_in_one_line_before_loading(
    tmp_path, capsys, no_loading, monkeypatch, extra, message
):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(_generate(tmp_path / "x.mp4", *extra))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_generate_writes_the_strip_of_the_default_model(tmp_path):
    info = json.loads((default_model_path() / "model_index.json").read_text())["native_size"]
    strip = tmp_path / "strip.png"
    status = main(
        _generate(tmp_path / "out.mp4", "--steps", "2", "--strip", str(strip), "--strip-frames", "4")
    )
    assert status == 0
    image = np.asarray(Image.open(strip).convert("RGB"))
    assert image.shape == (*_strip_size(4, 2, info["height"], info["width"]), 3)
    # the first track's colour where its track ends, in the last panel of the top row
    tracks = json.loads((EXAMPLES / "object_trajectory.json").read_text())["tracks"]
    end = np.asarray(tracks[0]["points"][-1], dtype=float) * (info["width"] / 384, info["height"] / 256)
    scale = strip_scale(info["height"])
    x, y = end * scale + (scale - 1) / 2
    panel_w = info["width"] * scale
    assert tuple(image[round(y), 3 * (panel_w + 4) + round(x)]) == track_colors(len(tracks))[0]
    assert (tmp_path / "out.mp4").is_file() and (tmp_path / "out.side_by_side.mp4").is_file()
