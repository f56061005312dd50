"""The embedded default model: shipped inside the package, used by ``generate`` with no weight options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imageconductor.cli import main
from imageconductor.pipelines import ImageConductorPipeline, default_model_path
from imageconductor.video_io import read_video
from imageconductor.video_outputs import output_paths

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "imageconductor" / "assets" / "examples"


def _example_frame(kind: str, info: dict) -> np.ndarray:
    """The shipped first frame of ``kind``, resized to the model frame, as float (H, W, 3)."""
    image = Image.open(EXAMPLES / f"{kind}_first_frame.png").convert("RGB")
    return np.asarray(image.resize((info["width"], info["height"])), dtype=float)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    path = default_model_path()
    assert path is not None, (
        "the embedded default model is not installed (imageconductor/assets/default_model)"
    )
    return path


def test_default_model_is_small_documented_and_states_its_size(model_dir):
    total = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
    assert total <= 50 * 2**20
    assert not list(model_dir.rglob("*.bin")) and not list(model_dir.rglob("*.ckpt"))  # safetensors only
    index = json.loads((model_dir / "model_index.json").read_text())
    assert set(index["native_size"]) == {"num_frames", "height", "width"}
    assert {"texture_scale", "motion_scale"} <= set(index["synthetic_world"])
    card = (model_dir / "README.md").read_text()
    assert "imageconductor train default" in card and "| vae |" in card and "| object |" in card
    # the card carries the measured table (imageconductor evaluate synthetic --update-card)
    metrics = card.partition("## Metrics")[2]
    assert "| ObjMC, object mode | synthetic-object | object |" in metrics
    assert "| CamMC, camera mode | synthetic-camera | camera |" in metrics


@pytest.mark.parametrize("kind", ["object", "camera"])
def test_generate_without_weight_options_uses_the_default(model_dir, tmp_path, kind):
    info = json.loads((model_dir / "model_index.json").read_text())["native_size"]
    out = tmp_path / f"{kind}.mp4"
    status = main(
        [
            "generate",
            "--image",
            str(EXAMPLES / f"{kind}_first_frame.png"),
            "--prompt",
            (EXAMPLES / f"{kind}_prompt.txt").read_text().strip(),
            "--trajectories",
            str(EXAMPLES / f"{kind}_trajectory.json"),
            "--out",
            str(out),
            "--steps",
            "3",
            "--seed",
            "0",
        ]
    )
    assert status == 0
    video, _ = read_video(out)
    assert video.shape == (info["num_frames"], info["height"], info["width"], 3)
    assert video.std() > 5  # a picture, not a flat frame
    # The first frame follows the input image (the image ControlNet's job), resized to the model frame.
    other_kind = "camera" if kind == "object" else "object"
    error_own = np.abs(video[0] - _example_frame(kind, info)).mean()
    error_other = np.abs(video[0] - _example_frame(other_kind, info)).mean()
    assert error_own < error_other
    assert output_paths(out)["side_by_side"].is_file()


def test_the_api_renders_at_the_models_native_size_with_no_size_given(model_dir):
    pipe = ImageConductorPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    native = json.loads((model_dir / "model_index.json").read_text())["native_size"]
    image = Image.open(EXAMPLES / "object_first_frame.png")
    tracks = [[[10, 10], [30, 20]]]  # pixels of the native frame
    video = pipe(prompt="a shape", image=image, trajectories=tracks, num_inference_steps=2, output_type="np")
    assert video.frames.shape == (1, native["num_frames"], native["height"], native["width"], 3)
    assert (native["num_frames"], native["height"], native["width"]) != (16, 256, 384)  # not the release's
