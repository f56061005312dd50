"""Every bad argument and input fails before any weights load: one line, exit 2, nothing written.

The command line runs in-process (`imageconductor.cli.main`) with the embedded default model; the weights
loader is replaced by one that fails the test, so each case proves that it was refused *before* loading.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import imageconductor.cli.common as common
from imageconductor.cli import main
from imageconductor.files import FileCheckError, check_output_file, check_output_folder, read_image
from imageconductor.pipelines import (
    MAX_VIDEO_PIXELS,
    SamplingSettings,
    check_sampling_numbers,
    check_video_size,
)

EXAMPLES = Path(common.__file__).resolve().parents[1] / "assets" / "examples"


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a command gets as far as loading weights."""

    def refuse(args):
        raise AssertionError("the weights were loaded before the bad input was refused")

    monkeypatch.setattr(common, "load_pipeline", refuse)
    import imageconductor.cli.evaluate as evaluate
    import imageconductor.cli.generate as generate

    monkeypatch.setattr(generate, "load_pipeline", refuse)
    monkeypatch.setattr(evaluate, "load_pipeline", refuse)


def _generate(out: Path, *extra: str, image: Path | None = None) -> list[str]:
    return [
        "generate",
        "--image",
        str(image or EXAMPLES / "object_first_frame.png"),
        "--prompt",
        "a prompt",
        "--trajectories",
        str(EXAMPLES / "object_trajectory.json"),
        "--out",
        str(out),
        "--steps",
        "1",
        *extra,
    ]


def _fails(argv: list[str], capsys) -> str:
    """Run the CLI, expect status 2 (returned or argparse's SystemExit) and return the one error line."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def big_png(tmp_path) -> Path:
    """A PNG of 10000 x 10000 pixels (a few hundred kB: one grey value), over Pillow's bomb threshold."""
    path = tmp_path / "bomb.png"
    PIL.Image.new("L", (10_000, 10_000)).save(path)
    return path


BAD_GENERATE = [
    (["--fps", "0"], "--fps: expected a finite number > 0"),
    (["--fps", "nan"], "--fps: expected a finite number"),
    (["--fps", "inf"], "--fps: expected a finite number"),
    (["--steps", "100000000"], "--steps must be at most 1000"),
    (["--steps", "0"], "--steps: expected a positive integer"),
    (["--seed", "-1"], "0 <= seed < 2**63"),
    (["--seed", str(2**63)], "0 <= seed < 2**63"),
    (["--guidance-scale", "inf"], "--guidance-scale: expected a finite number"),
    (["--guidance-scale", "-5"], "--guidance-scale: expected a finite number >= 0"),
    (["--camera-free-guidance", "nan"], "--camera-free-guidance: expected a finite number"),
    (["--flow-scale", "-1"], "--flow-scale: expected a finite number >= 0"),
    (["--num-frames", "1"], "num_frames must be at least 2"),
    (["--height", "7"], "multiples of 8"),
    (["--num-frames", "100000"], "more than the limit"),
    (["--height", "100000", "--width", "100000"], "at most 4096"),
    (["--num-frames", "2", "--height", "16", "--width", "100000"], "at most 4096"),
    (["--device", "cuda:99"], "not available"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--trajectory-size", "0x5"], "--trajectory-size: expected WIDTHxHEIGHT"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_GENERATE, ids=[" ".join(e) for e, _ in BAD_GENERATE])
def test_bad_generate_numbers_fail_before_loading(tmp_path, capsys, no_loading, extra, message):
    line = _fails(_generate(tmp_path / "x.mp4", *extra), capsys)
    assert message in line
    assert list(tmp_path.iterdir()) == []


def test_bad_generate_locations_and_images_fail_before_loading(tmp_path, capsys, no_loading, big_png):
    (tmp_path / "folder.mp4").mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    cases = {
        "/nonexistent-imageconductor/dir/x.mp4": "(/nonexistent-imageconductor/dir) does not exist",
        "/proc/x.mp4": "cannot write x.mp4 into /proc",
        str(tmp_path / "folder.mp4"): "is a folder",
        str(text / "x.mp4"): "is not a folder",
    }
    for out, message in cases.items():
        assert message in _fails(_generate(Path(out)), capsys)
    assert not Path("/nonexistent-imageconductor").exists()
    for image, message in (
        (tmp_path, "(it is a folder)"),
        (text, "cannot read image"),
        (big_png, "too large"),
    ):
        assert message in _fails(_generate(tmp_path / "x.mp4", image=image), capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.png", "folder.mp4", "notes.txt"]


def test_other_commands_refuse_bad_locations_and_numbers(tmp_path, capsys, no_loading):
    trajectory = str(EXAMPLES / "object_trajectory.json")
    (tmp_path / "videos").mkdir()
    cases = [
        (
            ["trajectories", "convert", trajectory, "--out", str(tmp_path / "missing" / "x.json")],
            "does not exist",
        ),
        (["trajectories", "convert", trajectory, "--out", str(tmp_path)], "is a folder"),
        (["trajectories", "preset", "pan_left", "--out", "/proc/x.json"], "cannot write"),
        (
            ["trajectories", "preset", "pan_left", "--out", str(tmp_path / "p.json"), "--frames", "9999"],
            "1024",
        ),
        (
            ["trajectories", "preset", "pan_left", "--out", str(tmp_path / "p.json"), "--grid", "99x99"],
            "1024",
        ),
        (
            ["trajectories", "preset", "zoom_in", "--out", str(tmp_path / "p.json"), "--magnitude", "nan"],
            "finite",
        ),
        (
            ["curate", str(tmp_path / "videos"), str(tmp_path / "videos" / "out"), "--dry-run"],
            "inside the input",
        ),
        (["curate", str(tmp_path / "videos"), str(tmp_path / "videos"), "--dry-run"], "inside the input"),
        (["curate", str(tmp_path / "videos"), "/proc/out", "--dry-run"], "cannot write"),
        (["evaluate", "suite", "--suite", "object", "--out", "/proc/s"], "cannot write"),
        (
            ["evaluate", "suite", "--suite", "object", "--out", str(tmp_path / "s"), "--device", "cuda:99"],
            "not available",
        ),
        (["evaluate", "report", trajectory, "--out", str(tmp_path / "a" / "b")], "does not exist"),
        (["evaluate", "synthetic", "--steps", "5000", "--out", str(tmp_path / "syn")], "at most 1000"),
        (
            ["evaluate", "video", trajectory, "--trajectories", trajectory, "--json", "/proc/x.json"],
            "cannot write",
        ),
        (
            ["evaluate", "fid", str(tmp_path), str(tmp_path), "--inception", trajectory, "--batch-size", "0"],
            "positive",
        ),
    ]
    cases += [
        (["train", "default", "--out", "/proc/model", "--profile", "smoke"], "cannot write"),
        (
            ["train", "default", "--out", str(tmp_path / "m"), "--steps-scale", "nan"],
            "expected a finite number",
        ),
        (["train", "examples", "--out", str(tmp_path / "a" / "b")], "does not exist"),
    ]
    for argv, message in cases:
        assert message in _fails(argv, capsys), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"]
    assert list((tmp_path / "videos").iterdir()) == []


def test_a_long_prompt_is_warned_about_in_one_line_and_the_run_goes_on(tmp_path, capsys):
    prompt = " ".join(["a red car on a coastal road at sunset"] * 12)
    argv = _generate(tmp_path / "x.mp4", "--num-frames", "2", "--height", "16", "--width", "16")
    argv[argv.index("--prompt") + 1] = prompt
    assert main([*argv, "--seed", "3", "--no-side-by-side"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("imageconductor: warning:")]
    assert len(warning) == 1 and "reads only the first 77" in warning[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4"]


# ----------------------------------------------------------------------------------------- the API
@pytest.fixture(scope="module")
def default_pipe():
    from imageconductor.pipelines import ImageConductorPipeline, default_model_path

    return ImageConductorPipeline.from_pretrained(default_model_path())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"guidance_scale": math.nan}, "guidance_scale must be a finite number"),
        ({"guidance_scale": math.inf}, "guidance_scale must be a finite number"),
        ({"guidance_scale": -1.0}, "guidance_scale must be >= 0"),
        ({"camera_free_guidance": math.inf}, "camera_free_guidance must be a finite number"),
        ({"motion_guidance_scale": math.nan}, "motion_guidance_scale must be a finite number"),
        ({"flow_conditioning_scale": -0.5}, "flow_conditioning_scale must be >= 0"),
        ({"num_inference_steps": -3}, "num_inference_steps must be a positive integer"),
        ({"num_inference_steps": 2.5}, "num_inference_steps must be a positive integer"),
        ({"num_inference_steps": 10**8}, "at most 1000"),
        ({"num_videos_per_prompt": 0}, "num_videos_per_prompt"),
        ({"eta": math.nan}, "eta must be a number in"),
        ({"num_frames": 4096, "height": 512, "width": 512}, "more than the limit"),
        ({"height": 60}, "multiples of 8"),
    ],
)
def test_the_pipeline_refuses_bad_numbers_before_any_compute(default_pipe, monkeypatch, overrides, message):
    def no_compute(*args, **kwargs):
        raise AssertionError("compute started before the bad number was refused")

    monkeypatch.setattr(default_pipe, "encode_prompt", no_compute)
    monkeypatch.setattr(default_pipe, "encode_image", no_compute)
    kwargs = {
        "prompt": "p",
        "image": np.zeros((64, 96, 3), np.uint8),
        "trajectories": [[[10.0, 10.0], [20.0, 20.0]]],
        "num_inference_steps": 1,
        **overrides,
    }
    with pytest.raises(ValueError, match=message):
        default_pipe(**kwargs)


def test_the_pipeline_warns_about_prompts_longer_than_the_text_encoder_reads(default_pipe):
    from imageconductor.pipelines.image_conductor import PromptTruncatedWarning

    limit = default_pipe.tokenizer.model_max_length
    short, long = "a car", " ".join(["a red car on a coastal road"] * 20)
    assert default_pipe.prompt_token_count(short) <= limit < default_pipe.prompt_token_count(long)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default_pipe.warn_if_truncated(short)
    with pytest.warns(PromptTruncatedWarning, match=f"first {limit}"):
        default_pipe.warn_if_truncated(["fine", long])


def test_sampling_settings_and_sizes_are_checked_where_they_are_made():
    with pytest.raises(ValueError, match="seed"):
        SamplingSettings(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        SamplingSettings(seed=2**63)
    assert SamplingSettings(seed=2**63 - 1).generator().initial_seed() == 2**63 - 1
    with pytest.raises(ValueError, match="guidance_scale"):
        SamplingSettings(guidance_scale=math.nan)
    check_sampling_numbers(1000, 0.0, 0.0, 0.0, 0.0, max_steps=1000)
    with pytest.raises(ValueError, match="at most 999"):
        check_sampling_numbers(1000, 7.5, None, 1.0, 1.0, max_steps=999)
    check_video_size(16, 1024, 1536, 8)
    assert MAX_VIDEO_PIXELS == 16 * 1024 * 1536
    with pytest.raises(ValueError, match="more than the limit"):
        check_video_size(17, 1024, 1536, 8)
    with pytest.raises(ValueError, match="positive whole number"):
        check_video_size(16, 0, 64, 8)
    with pytest.raises(ValueError, match="at most 4096"):
        check_video_size(2, 16, 100_000, 8)  # 3.2 M pixels: under the pixel cap, but one side too long
    check_video_size(2, 16, 4096, 8)


# -------------------------------------------------------------------------------- the files layer
def test_output_checks_leave_nothing_and_create_nothing(tmp_path):
    assert check_output_file(tmp_path / "x.mp4") == tmp_path / "x.mp4"
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileCheckError, match="does not exist"):
        check_output_folder(tmp_path / "a" / "b")
    with pytest.raises(FileCheckError, match="inside the input folder"):
        check_output_folder(tmp_path / "in" / ".." / "in" / "out", not_inside=tmp_path / "in")
    check_output_folder(tmp_path / "input-sibling", not_inside=tmp_path / "input")


def test_decompression_bombs_are_an_error_not_a_warning(big_png, tmp_path):
    with pytest.raises(FileCheckError, match="too large to read safely"):
        read_image(big_png)
    small = tmp_path / "small.png"
    PIL.Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(FileCheckError, match="1,200 pixels, more than the limit of 1,000"):
        read_image(small, max_pixels=1000)
    assert read_image(small).size == (40, 30)


def test_generation_outputs_appear_all_together_or_not_at_all(tmp_path, monkeypatch):
    import imageconductor.video_outputs as video_outputs
    from imageconductor.trajectories import TrajectorySet

    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    tracks = TrajectorySet([np.array([[2.0, 2.0], [10.0, 12.0]])], image_size=(16, 16))
    (tmp_path / "clip.mp4").write_bytes(b"an earlier video")

    def broken(*args, **kwargs):
        raise RuntimeError("the side-by-side failed")

    monkeypatch.setattr(video_outputs, "side_by_side", broken)
    with pytest.raises(RuntimeError, match="side-by-side failed"):
        video_outputs.write_generation_outputs(frames, tracks, tmp_path / "clip.mp4", gif=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert (tmp_path / "clip.mp4").read_bytes() == b"an earlier video"
    monkeypatch.undo()
    written = video_outputs.write_generation_outputs(frames, tracks, tmp_path / "clip.mp4", gif=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written.values())
    assert len(written) == 4 and (tmp_path / "clip.mp4").read_bytes() != b"an earlier video"


def test_unreadable_inputs_are_one_line(tmp_path, capsys, no_loading):
    """Running as root, permission bits do not stop reads; /proc/self/mem is a file whose read fails."""
    unreadable = Path("/proc/self/mem")
    assert "cannot read image" in _fails(_generate(tmp_path / "x.mp4", image=unreadable), capsys)
    argv = _generate(tmp_path / "x.mp4")
    argv[argv.index("--trajectories") + 1] = str(unreadable)
    assert "cannot read trajectory file" in _fails(argv, capsys)
    assert list(tmp_path.iterdir()) == []
