"""The command line's weight and inference options: refusals that come before any weight is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from PIL import Image

from imageconductor.cli import main
from imageconductor.cli.common import lora_argument
from imageconductor.pipelines import ImageConductorPipeline, memory
from test_cli_generate import _base_args


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights_cli") / "frame.png"
    Image.new("RGB", (120, 80), (120, 30, 200)).save(path)
    return path


_OFFICIAL_FLAGS = ("--pretrained-model-path", "--unet", "--image-controlnet", "--flow-controlnet")


def _generate_args(
    official_dir, official_manifest, first_frame, tmp_path, *extra, official=True
) -> list[str]:
    """``generate`` on the official-tiny files (without them when ``official`` is false) plus ``extra``."""
    args = _base_args(official_dir, official_manifest, first_frame, tmp_path / "clip.mp4")
    if not official:
        drop = {index + shift for index, arg in enumerate(args) if arg in _OFFICIAL_FLAGS for shift in (0, 1)}
        args = [arg for index, arg in enumerate(args) if index not in drop]
    return [*args, *extra]


@pytest.fixture()
def no_loading(monkeypatch):
    """Loading any weights fails with "loading reached" (a refusal must come before it)."""

    def refuse(*args, **kwargs):
        raise OSError("loading reached")

    monkeypatch.setattr(ImageConductorPipeline, "from_official", classmethod(refuse))
    monkeypatch.setattr(ImageConductorPipeline, "from_pretrained", classmethod(refuse))


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "Traceback" not in "\n".join(lines)
    return lines[-1]


def test_memory_estimate_refuses_before_loading(
    official_dir, official_manifest, first_frame, tmp_path, capsys, monkeypatch, no_loading
):
    seen = {}

    def tiny_memory(device):
        seen["device"] = torch.device(device)
        return 2 * 1024**2

    monkeypatch.setattr(memory, "available_memory", tiny_memory)
    assert (
        main(_generate_args(official_dir, official_manifest, first_frame, tmp_path, "--device", "cpu")) == 2
    )
    line = _one_error_line(capsys)
    assert "needs about" in line and "but 0.0 GiB is free" in line, line
    assert seen["device"] == torch.device("cpu")


def test_memory_estimate_lets_a_fitting_request_through(
    official_dir, official_manifest, first_frame, tmp_path, capsys, monkeypatch, no_loading
):
    monkeypatch.setattr(memory, "available_memory", lambda device: 64 * 1024**3)
    assert (
        main(_generate_args(official_dir, official_manifest, first_frame, tmp_path, "--device", "cpu")) == 2
    )
    assert _one_error_line(capsys).endswith("cannot load weights: loading reached")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--device", "cuda"), "not available on this machine"),
        (("--device", "cuda:3"), "not available on this machine"),
        (("--device", "nonsense"), "unknown device"),
        (("--device", "cpu", "--offload"), "--offload"),
    ],
)
def test_unavailable_device_is_refused_first(
    official_dir, official_manifest, first_frame, tmp_path, capsys, no_loading, options, expected
):
    assert main(_generate_args(official_dir, official_manifest, first_frame, tmp_path, *options)) == 2
    assert expected in _one_error_line(capsys)


def test_from_hub_offline_without_cache_is_one_line(
    official_dir, official_manifest, first_frame, tmp_path, capsys, monkeypatch, no_loading
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert (
        main(
            _generate_args(
                official_dir, official_manifest, first_frame, tmp_path, "--from-hub", official=False
            )
        )
        == 2
    )
    line = _one_error_line(capsys)
    assert "TencentARC/ImageConductor" in line and "offline" in line and "internet access" in line


def test_from_hub_excludes_other_weight_options(
    official_dir, official_manifest, first_frame, tmp_path, capsys, no_loading
):
    assert main(_generate_args(official_dir, official_manifest, first_frame, tmp_path, "--from-hub")) == 2
    assert "pass one of --from-hub" in _one_error_line(capsys)


def test_lora_must_be_safetensors(
    official_dir, official_manifest, first_frame, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(memory, "available_memory", lambda device: 64 * 1024**3)
    pickled = tmp_path / "style.ckpt"
    torch.save({"x": torch.zeros(1)}, pickled)
    assert (
        main(
            _generate_args(
                official_dir,
                official_manifest,
                first_frame,
                tmp_path,
                "--device",
                "cpu",
                "--lora",
                f"{pickled}:0.5",
            )
        )
        == 2
    )
    assert "must be a .safetensors file" in _one_error_line(capsys)


def test_lora_argument():
    assert lora_argument("style.safetensors:0.5") == (Path("style.safetensors"), 0.5)
    assert lora_argument("style.safetensors") == (Path("style.safetensors"), 0.8)
    assert lora_argument("C:/loras/style.safetensors") == (Path("C:/loras/style.safetensors"), 0.8)


def test_compile_option_compiles_the_loaded_networks(
    official_dir, official_manifest, first_frame, tmp_path, monkeypatch
):
    compiled: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, **kwargs: compiled.append((type(self).__name__, kwargs))
    )
    assert main(_generate_args(official_dir, official_manifest, first_frame, tmp_path, "--compile")) == 0
    assert compiled == [
        ("ImageConductorUNetModel", {"dynamic": False}),
        ("ImageConductorControlNetModel", {"dynamic": False}),
        ("ImageConductorControlNetModel", {"dynamic": False}),
    ]
    assert (tmp_path / "clip.mp4").stat().st_size > 0
    compiled.clear()
    assert main(_generate_args(official_dir, official_manifest, first_frame, tmp_path)) == 0
    assert compiled == []


def test_official_files_refuse_1000_steps_before_loading(
    official_dir, official_manifest, first_frame, tmp_path, capsys, no_loading
):
    args = _generate_args(official_dir, official_manifest, first_frame, tmp_path, "--steps", "1000")
    assert main(args) == 2
    assert "--steps must be at most 999" in _one_error_line(capsys)
