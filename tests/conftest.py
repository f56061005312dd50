"""Shared test fixtures: the official golden files live in tests/fixtures/official_tiny (see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState

from official_tiny import OFFICIAL_TINY, load_official_tiny, official_tiny_sampling_inputs

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return OFFICIAL_TINY


@pytest.fixture(scope="session")
def official_manifest(official_dir: Path) -> dict:
    return json.loads((official_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def official_pipeline(official_dir: Path):
    """``ImageConductorPipeline.from_official`` on the official-tiny files (progress bar off)."""
    return load_official_tiny(fixture=official_dir)


@pytest.fixture(scope="module")
def official_sampling_inputs(official_dir: Path) -> dict:
    """Pipeline keyword arguments of the official-tiny golden run: its prompt, image latents, flow condition,
    initial noise, size and CFG scale, with two DDIM steps (enough for a guided prediction to feed back)."""
    return official_tiny_sampling_inputs(official_dir, steps=2)


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


@pytest.fixture()
def official_unet(official_dir: Path):
    """The official-tiny video UNet, loaded afresh for each test."""
    from imageconductor.models import load_official_unet

    return load_official_unet(official_dir / "sd15-tiny", official_dir / "official-weights" / "unet.ckpt")


@pytest.fixture()
def official_text_encoder(official_dir: Path):
    """The official-tiny CLIP text encoder, loaded afresh for each test."""
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(official_dir / "sd15-tiny" / "text_encoder", local_files_only=True)


@pytest.fixture(scope="module")
def single_torch_thread():
    """One torch thread for a module: tiny networks gain nothing from threads, and builds compared bit for
    bit must sum in the same order (sums split across threads round differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def fresh_accelerate_state():
    """accelerate's process-wide state reset around a test (training runs create an Accelerator)."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
