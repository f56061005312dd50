"""Shared test fixtures: the official golden files live in tests/fixtures/official_tiny (see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_TINY = PROJECT_ROOT / "tests" / "fixtures" / "official_tiny"


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return OFFICIAL_TINY


@pytest.fixture(scope="session")
def official_manifest(official_dir: Path) -> dict:
    return json.loads((official_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def official_pipeline(official_dir: Path):
    """``ImageConductorPipeline.from_official`` on the official-tiny files (progress bar off)."""
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    weights = official_dir / "official-weights"
    pipe = ImageConductorPipeline.from_official(
        official_dir / "sd15-tiny",
        unet_path=weights / "unet.ckpt",
        image_controlnet_path=weights / "image_controlnet.ckpt",
        flow_controlnet_path=weights / "flow_controlnet.ckpt",
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def official_sampling_inputs(official_dir: Path, official_manifest: dict) -> dict:
    """Pipeline keyword arguments of the official-tiny golden run: its prompt, image latents, flow condition,
    initial noise, size and CFG scale, with two DDIM steps (enough for a guided prediction to feed back)."""
    from safetensors.torch import load_file

    step = load_file(official_dir / "single_step.safetensors")
    sampling = load_file(official_dir / "sampling.safetensors")
    size = official_manifest["size"]
    return {
        "prompt": official_manifest["prompt"],
        "image_latents": step["image_latents"],
        "flow_condition": step["flow_condition"],
        "latents": sampling["object.initial_latents"],
        "num_frames": size["L"],
        "height": size["H"],
        "width": size["W"],
        "num_inference_steps": 2,
        "guidance_scale": official_manifest["sampling"]["guidance_scale"],
    }


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The web app on the embedded default model, served on a free loopback port for the test session.
    Yields ``(app, pipeline)``; ``app.local_url`` is its address."""
    from imageconductor.app import launch_app
    from imageconductor.pipelines import default_model_path
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    pipe = ImageConductorPipeline.from_pretrained(default_model_path())
    pipe.set_progress_bar_config(disable=True)
    app = launch_app(
        pipe, port=0, block=False, quiet=True, output_root=tmp_path_factory.mktemp("app-outputs")
    )
    try:
        yield app, pipe
    finally:
        app.close()
