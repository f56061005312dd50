"""The embedded default model: shipped inside the package, used by ``generate`` with no weight options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imageconductor.cli import main, output_paths
from imageconductor.pipelines import default_model_path
from imageconductor.video_io import read_video

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
    info = json.loads((model_dir / "imageconductor_model.json").read_text())
    assert {"num_frames", "height", "width"} <= set(info)
    card = (model_dir / "README.md").read_text()
    assert "make_default" in card and "| vae |" in card and "| object |" in card
    # the card carries the measured table (scripts/evaluate_default_model.py --update-card)
    metrics = card.partition("## Metrics")[2]
    assert "| ObjMC, object mode | synthetic-object | object |" in metrics
    assert "| CamMC, camera mode | synthetic-camera | camera |" in metrics


@pytest.mark.parametrize("kind", ["object", "camera"])
def test_generate_without_weight_options_uses_the_default(model_dir, tmp_path, kind):
    info = json.loads((model_dir / "imageconductor_model.json").read_text())
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
