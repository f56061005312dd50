"""``imageconductor generate`` end to end on the official-tiny weights, and its error paths."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest

from imageconductor.cli import main
from imageconductor.pipelines import write_model_settings
from imageconductor.video_io import probe, read_video
from imageconductor.video_outputs import output_paths


@pytest.fixture(scope="module")
def image_path(tmp_path_factory, official_manifest):
    size = official_manifest["size"]
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("cli") / "first_frame.png"
    # Not the model's aspect ratio: the CLI centre-crops and resizes.
    PIL.Image.fromarray(rng.integers(0, 256, (size["H"] + 20, size["W"] * 2, 3), dtype=np.uint8)).save(path)
    return path


def _base_args(official_dir, official_manifest, image_path, out):
    size = official_manifest["size"]
    weights = official_dir / "official-weights"
    return [
        "generate",
        "--image",
        str(image_path),
        "--prompt",
        official_manifest["prompt"],
        "--trajectories",
        str(official_dir / "trajectories" / "model_step.json"),
        # The golden tracks are an official list drawn on the tiny model's own frame.
        "--trajectory-size",
        f"{size['W']}x{size['H']}",
        "--pretrained-model-path",
        str(official_dir / "sd15-tiny"),
        "--unet",
        str(weights / "unet.ckpt"),
        "--image-controlnet",
        str(weights / "image_controlnet.ckpt"),
        "--flow-controlnet",
        str(weights / "flow_controlnet.ckpt"),
        "--out",
        str(out),
        "--steps",
        "2",
        "--seed",
        "7",
        "--num-frames",
        str(size["L"]),
        "--height",
        str(size["H"]),
        "--width",
        str(size["W"]),
    ]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture(scope="module")
def official_run(official_dir, official_manifest, image_path, tmp_path_factory):
    """One ``generate`` run with the official files, MP4 + GIF + side-by-side."""
    out = tmp_path_factory.mktemp("official_run") / "clip.mp4"
    status = main(
        [*_base_args(official_dir, official_manifest, image_path, out), "--gif", "--mode", "object"]
    )
    return status, out


def test_generate_writes_mp4_gif_and_side_by_side(official_run, official_manifest):
    size = official_manifest["size"]
    status, out = official_run
    assert status == 0
    paths = output_paths(out)
    info = probe(paths["mp4"])
    assert (info.num_frames, info.width, info.height, info.codec) == (size["L"], size["W"], size["H"], "h264")
    video, fps = read_video(paths["mp4"])
    assert video.shape == (size["L"], size["H"], size["W"], 3) and fps == pytest.approx(8)
    assert video.std() > 1  # an actual picture, not a constant frame
    panel, _ = read_video(paths["side_by_side"])
    assert panel.shape[0] == size["L"] and panel.shape[1] == size["H"] and panel.shape[2] > 2 * size["W"]
    # Left half is the generated video; the right half differs only where the tracks are drawn.
    left, right = panel[..., : size["W"], :].astype(int), panel[..., -size["W"] :, :].astype(int)
    assert np.abs(left - video).mean() < 8
    changed = np.abs(right - left).max(axis=-1) > 60
    assert 0 < changed.mean() < 0.5
    # Drawn progressively: more of the picture is covered on the last frame than on the first.
    assert changed[-1].sum() > changed[0].sum()
    gif = PIL.Image.open(paths["gif"])
    assert gif.n_frames == size["L"] and gif.size == (size["W"], size["H"])
    assert paths["side_by_side_gif"].is_file()


def test_saved_weights_reproduce_the_official_files_run(
    official_run, official_dir, official_manifest, image_path, tmp_path, capsys
):
    """--weights-dir (a save_pretrained folder) with the same seed gives the same video."""
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    weights = official_dir / "official-weights"
    ImageConductorPipeline.from_official(
        official_dir / "sd15-tiny",
        weights / "unet.ckpt",
        weights / "image_controlnet.ckpt",
        weights / "flow_controlnet.ckpt",
    ).save_pretrained(tmp_path / "saved")
    # The folder states its native size, so the run needs no size options.
    size = official_manifest["size"]
    native = {"num_frames": size["L"], "height": size["H"], "width": size["W"]}
    write_model_settings(tmp_path / "saved", native_size=native)
    args = _without_size(
        _without_official_weights(_base_args(official_dir, official_manifest, image_path, tmp_path / "b.mp4"))
    )
    status = main([*args, "--weights-dir", str(tmp_path / "saved"), "--mode", "object", "--no-side-by-side"])
    assert status == 0, capsys.readouterr().err
    first, _ = read_video(official_run[1])
    second, _ = read_video(tmp_path / "b.mp4")
    np.testing.assert_array_equal(first, second)
    assert not output_paths(tmp_path / "b.mp4")["side_by_side"].exists()


def _without_flags(args: list[str], flags: tuple[str, ...]) -> list[str]:
    args = list(args)
    for flag in flags:
        index = args.index(flag)
        del args[index : index + 2]
    return args


def _without_official_weights(args: list[str]) -> list[str]:
    return _without_flags(
        args, ("--pretrained-model-path", "--unet", "--image-controlnet", "--flow-controlnet")
    )


def _without_size(args: list[str]) -> list[str]:
    return _without_flags(args, ("--num-frames", "--height", "--width"))


def test_video_size_comes_from_options_then_the_model_config_then_the_release(tmp_path):
    import argparse

    from imageconductor.cli.common import CLIError, resolve_video_size

    folder = tmp_path / "model"
    (folder / "vae").mkdir(parents=True)
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [8, 16, 32]}))
    (folder / "model_index.json").write_text("{}")
    write_model_settings(folder, native_size={"num_frames": 8, "height": 64, "width": 96})
    official = dict(pretrained_model_path=None, unet=None, image_controlnet=None, flow_controlnet=None)

    def size(**given):
        sizes = {"num_frames": None, "height": None, "width": None, **given}
        return resolve_video_size(argparse.Namespace(weights_dir=folder, **official, **sizes))

    assert (size().num_frames, size().height, size().width) == (8, 64, 96)
    assert (size(height=132).height, size(height=132).width) == (132, 96)  # a three-level VAE: factor 4
    with pytest.raises(CLIError, match="multiples of 4"):
        size(width=98)
    (folder / "model_index.json").write_text("{}")
    assert (size().num_frames, size().height, size().width) == (16, 256, 384)


def test_missing_weight_file_is_one_line_exit_2(
    official_dir, official_manifest, image_path, tmp_path, capsys
):
    args = _base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4")
    missing = tmp_path / "gone" / "unet.ckpt"
    args[args.index("--unet") + 1] = str(missing)
    assert main(args) == 2
    line = _error_line(capsys)
    assert line.startswith("imageconductor: error:") and str(missing) in line
    assert not (tmp_path / "x.mp4").exists()


def test_partial_official_weights_name_the_missing_options(
    official_dir, official_manifest, image_path, tmp_path, capsys
):
    args = _base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4")
    index = args.index("--flow-controlnet")
    del args[index : index + 2]
    assert main(args) == 2
    assert "--flow-controlnet" in _error_line(capsys)


def test_no_weights_and_no_default_model(
    official_dir, official_manifest, image_path, tmp_path, capsys, monkeypatch
):
    import imageconductor.pipelines as pipelines

    monkeypatch.setattr(pipelines, "DEFAULT_MODEL_DIR", tmp_path / "not_installed")
    args = _without_official_weights(
        _base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4")
    )
    assert main(args) == 2
    assert "no embedded default model is installed" in _error_line(capsys)


def test_weights_dir_without_model_index(official_dir, official_manifest, image_path, tmp_path, capsys):
    args = _without_official_weights(
        _base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4")
    )
    assert main([*args, "--weights-dir", str(tmp_path)]) == 2
    assert "model_index.json" in _error_line(capsys)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all", "invalid JSON"),
        (json.dumps([[[10, 10], [float("nan"), 3]]]), "track 0, point 1"),
        (json.dumps([[[10, 10], [5000, 3]]]), "outside"),
        (json.dumps([]), "no tracks"),
    ],
)
def test_bad_trajectory_file_is_one_line_exit_2(
    official_dir, official_manifest, image_path, tmp_path, capsys, content, expected
):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    args = _base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4")
    args[args.index("--trajectories") + 1] = str(bad)
    assert main(args) == 2
    line = _error_line(capsys)
    assert "bad trajectory file" in line and expected in line


def test_bad_image_is_one_line_exit_2(official_dir, official_manifest, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG this is not really a png")
    assert main(_base_args(official_dir, official_manifest, bad, tmp_path / "x.mp4")) == 2
    assert "cannot read image" in _error_line(capsys)
    assert main(_base_args(official_dir, official_manifest, tmp_path / "absent.png", tmp_path / "x.mp4")) == 2
    assert "image not found" in _error_line(capsys)


def test_argument_errors(official_dir, official_manifest, image_path, tmp_path, capsys):
    args = _base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4")
    with pytest.raises(SystemExit) as info:
        main([*args, "--mode", "sideways"])
    assert info.value.code == 2
    assert "invalid mode" in capsys.readouterr().err
    assert main([*args, "--height", "60"]) == 2
    assert "multiples of 8" in _error_line(capsys)
    args[args.index("--out") + 1] = str(tmp_path / "x.avi")
    assert main(args) == 2
    assert ".mp4" in _error_line(capsys)


def test_blend_mode_parses():
    from imageconductor.guidance import format_mode, parse_mode

    assert parse_mode("camera=1,object=0.5") == {"camera": 1.0, "object": 0.5}
    assert parse_mode(" camera = 1 , object=0.5 ") == {"camera": 1.0, "object": 0.5}
    assert parse_mode("none") == "none"
    assert format_mode({"camera": 1.0, "object": 0.5}) == "camera=1,object=0.5"
    for bad, message in (("sideways", "mode must be"), ("camera=", "blend"), ("cam=1", "unknown adapter")):
        with pytest.raises(ValueError, match=message):
            parse_mode(bad)


def test_every_command_is_listed(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("generate", "curate", "train", "evaluate", "trajectories"):
        assert name in out


def test_motion_guidance_option_reaches_the_sampler(
    official_dir, official_manifest, image_path, tmp_path, capsys
):
    """``--motion-guidance 0`` without CFG is trajectory control off; 1 is not; a negative value is refused."""
    args = [
        *_base_args(official_dir, official_manifest, image_path, tmp_path / "x.mp4"),
        "--guidance-scale",
        "1",
    ]
    args += ["--no-side-by-side", "--mode", "object"]
    videos = {}
    for name, extra in {
        "guided0": ["--motion-guidance", "0"],
        "off": ["--flow-scale", "0"],
        "on": [],
    }.items():
        args[args.index("--out") + 1] = str(tmp_path / f"{name}.mp4")
        assert main([*args, *extra]) == 0
        videos[name] = read_video(tmp_path / f"{name}.mp4")[0].astype(int)
    assert np.abs(videos["guided0"] - videos["off"]).mean() < 0.05  # equal up to float rounding + H.264
    assert np.abs(videos["on"] - videos["off"]).mean() > 1
    with pytest.raises(SystemExit) as info:
        main([*args, "--motion-guidance", "-1"])
    assert info.value.code == 2
    assert "expected a finite number >= 0" in capsys.readouterr().err
