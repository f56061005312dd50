"""Photos with an EXIF orientation, outputs with the umask's permissions, one video as curation input, and
a curation run that keeps nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from imageconductor.cli import main
from imageconductor.curation.demo import write_demo_corpus
from imageconductor.files import read_image
from imageconductor.video_io import write_mp4

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "imageconductor" / "assets" / "examples"
ORIENTATION = 0x0112


def _stored_sideways(path: Path, fmt: str) -> np.ndarray:
    """Write a 40 x 24 picture stored rotated (pixels 24 wide, 40 high) with EXIF orientation 6 ("rotate
    90° clockwise to display"), as phone cameras do; return the upright picture a viewer shows."""
    rng = np.random.default_rng(0)
    upright = np.zeros((24, 40, 3), np.uint8)
    upright[:, :20] = (255, 0, 0)  # left half red, right half blue
    upright[:, 20:] = (0, 0, 255)
    upright[:4, :4] = rng.integers(0, 255, (4, 4, 3))
    stored = PIL.Image.fromarray(upright).transpose(PIL.Image.Transpose.ROTATE_90)  # 24 wide, 40 high
    exif = PIL.Image.Exif()
    exif[ORIENTATION] = 6
    stored.save(
        path, format=fmt, exif=exif.tobytes(), **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {})
    )
    return upright


@pytest.mark.parametrize(("name", "fmt", "tolerance"), [("photo.jpg", "JPEG", 6), ("photo.png", "PNG", 0)])
def test_exif_orientation_is_honoured(tmp_path, name, fmt, tolerance):
    path = tmp_path / name
    upright = _stored_sideways(path, fmt)
    with PIL.Image.open(path) as raw:
        assert raw.size == (24, 40) and raw.getexif()[ORIENTATION] == 6
    image = read_image(path)
    assert image.size == (40, 24)
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[4:, :] - upright[4:, :].astype(int)).mean() <= tolerance  # JPEG: compression only
    assert pixels[12, 5, 0] > 200 and pixels[12, 35, 2] > 200  # red on the left, blue on the right


def test_the_command_line_reads_the_photo_upright(tmp_path):
    from imageconductor.cli.common import load_image

    upright = _stored_sideways(tmp_path / "photo.png", "PNG")
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "photo.png")), upright)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in folder.rglob("*")
        if path.is_file() and ".curation-work" not in path.parts and path.name != ".curation.lock"
    }


def test_generate_outputs_get_the_umask_permissions(tmp_path, umask_022):
    argv = [
        "generate",
        "--image",
        str(EXAMPLES / "object_first_frame.png"),
        "--prompt",
        "a prompt",
        "--trajectories",
        str(EXAMPLES / "object_trajectory.json"),
        "--out",
        str(tmp_path / "clip.mp4"),
        *("--steps", "1", "--num-frames", "2", "--height", "16", "--width", "16", "--seed", "1", "--gif"),
    ]
    assert main(argv) == 0
    modes = _modes(tmp_path)
    assert set(modes) == {"clip.mp4", "clip.gif", "clip.side_by_side.mp4", "clip.side_by_side.gif"}
    assert set(modes.values()) == {0o644}
    os.umask(0o077)
    assert main(argv) == 0
    assert set(_modes(tmp_path).values()) == {0o600}


def test_trajectory_files_get_the_umask_permissions(tmp_path, umask_022):
    source = str(EXAMPLES / "object_trajectory.json")
    assert main(["trajectories", "convert", source, "--out", str(tmp_path / "a.json"), "--official"]) == 0
    assert main(["trajectories", "preset", "pan_left", "--out", str(tmp_path / "b.json")]) == 0
    assert _modes(tmp_path) == {"a.json": 0o644, "b.json": 0o644}


@pytest.fixture(scope="module")
def one_video(tmp_path_factory) -> Path:
    corpus = write_demo_corpus(
        tmp_path_factory.mktemp("corpus"), num_videos=1, seed=2, frames_per_scene=(40, 40)
    )
    return corpus.folder / "raw_000.mp4"


def test_a_single_video_file_is_a_curation_input_and_its_shards_get_the_umask_permissions(
    one_video, tmp_path, umask_022, capsys
):
    (one_video.with_suffix(".txt")).write_text("a caption beside the video\n")
    out = tmp_path / "out"
    argv = ["curate", str(one_video), str(out), "--no-progress", "--num-frames", "16", "--motion-drop", "0"]
    assert main([*argv, "--dry-run"]) == 0
    assert "1 input(s)" in capsys.readouterr().out
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["inputs"], summary["kept"]) == (1, 1)
    index = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert index[0]["input_id"] == one_video.name
    modes = _modes(out)
    assert any(name.startswith("shards/") for name in modes)
    assert set(modes.values()) == {0o644}, modes


def test_curation_that_keeps_nothing_says_so_and_fails_when_strict(tmp_path, capsys):
    short = tmp_path / "short.mp4"
    write_mp4(np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8), short)
    argv = ["curate", str(short), str(tmp_path / "out"), "--no-progress", "--num-frames", "16"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "no clip was kept from 1 input(s)" in err and "report.jsonl" in err
    assert main([*argv, "--strict"]) == 1
    assert "no clip was kept" in capsys.readouterr().err
