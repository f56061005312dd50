"""`ImageConductorPipeline.from_hub` on a Hub cache laid out from the official-tiny files, offline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.utils import filter_repo_objects

from imageconductor.pipelines import ImageConductorPipeline
from imageconductor.pipelines.hub import (
    BASE_MODEL_PATTERNS,
    RELEASED_CHECKPOINTS,
    RELEASED_REPO_ID,
    SD15_REPO_ID,
    HubWeightsError,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def lay_out_repo(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Write ``files`` (name in the repo -> source) as the Hub cache does: blobs named by content hash,
    snapshot entries linking to them, ``refs/main`` naming the commit."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        blob = root / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        shutil.copyfile(source, blob)
        entry = root / "snapshots" / COMMIT / name
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.symlink_to(Path("..", *[".."] * name.count("/"), "..", "blobs", blob.name))


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture()
def hub_cache(official_dir: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "hub"
    weights = official_dir / "official-weights"
    lay_out_repo(cache, RELEASED_REPO_ID, {name: weights / name for name in RELEASED_CHECKPOINTS.values()})
    base = official_dir / "sd15-tiny"
    names = [path.relative_to(base).as_posix() for path in sorted(base.rglob("*")) if path.is_file()]
    selected = list(filter_repo_objects(names, allow_patterns=list(BASE_MODEL_PATTERNS)))
    # Only what the patterns select goes into the cache: the base UNet's weights stay out.
    assert "unet/diffusion_pytorch_model.safetensors" in names
    assert "unet/diffusion_pytorch_model.safetensors" not in selected
    lay_out_repo(cache, SD15_REPO_ID, {name: base / name for name in selected})
    return cache


def test_from_hub_offline_equals_from_official(
    offline, hub_cache, monkeypatch, official_pipeline, official_sampling_inputs
):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    pipe = ImageConductorPipeline.from_hub(cache_dir=hub_cache)
    pipe.set_progress_bar_config(disable=True)
    assert (
        pipe._sd15_folder == hub_cache / f"models--{SD15_REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    )

    ours = pipe(**official_sampling_inputs, output_type="latent").frames
    reference = official_pipeline(**official_sampling_inputs, output_type="latent").frames
    assert ours.shape == reference.shape
    assert torch.equal(ours, reference), (ours - reference).abs().max()


def test_offline_without_cache_is_one_clear_error(offline, tmp_path):
    with pytest.raises(HubWeightsError) as caught:
        ImageConductorPipeline.from_hub(cache_dir=tmp_path / "empty")
    message = str(caught.value)
    assert "\n" not in message
    assert RELEASED_REPO_ID in message and "unet.ckpt" in message
    assert "offline" in message and "internet access" in message


def test_incomplete_base_snapshot_is_named(offline, hub_cache):
    base = hub_cache / f"models--{SD15_REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    (base / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(HubWeightsError, match=r"lacks vae/diffusion_pytorch_model\.safetensors"):
        ImageConductorPipeline.from_hub(cache_dir=hub_cache)


def test_the_from_hub_option_generates_what_the_official_file_options_generate(
    offline, hub_cache, monkeypatch, official_dir, official_manifest, tmp_path
):
    import numpy as np
    from PIL import Image

    from imageconductor.cli import main
    from imageconductor.video_io import read_video
    from test_cli_generate import _base_args

    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    frame = tmp_path / "frame.png"
    Image.new("RGB", (120, 80), (120, 30, 200)).save(frame)
    official = _base_args(official_dir, official_manifest, frame, tmp_path / "official.mp4")
    hub = _base_args(official_dir, official_manifest, frame, tmp_path / "hub.mp4")
    for flag in ("--pretrained-model-path", "--unet", "--image-controlnet", "--flow-controlnet"):
        index = hub.index(flag)
        del hub[index : index + 2]
    assert main([*official, "--no-side-by-side"]) == 0
    assert main([*hub, "--from-hub", "--no-side-by-side"]) == 0
    np.testing.assert_array_equal(
        read_video(tmp_path / "hub.mp4")[0], read_video(tmp_path / "official.mp4")[0]
    )
