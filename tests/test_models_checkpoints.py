"""Reading the released checkpoint files: wrappings, key mapping, clear errors, no pickle execution."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imageconductor.models import (
    CheckpointError,
    CheckpointKeyError,
    load_official_flow_controlnet,
    load_official_image_controlnet,
    read_checkpoint,
)
from imageconductor.models.convert_official import diffusers_key, motion_layout


@pytest.fixture(scope="module")
def image_state(official_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(official_dir / "official-weights" / "image_controlnet.ckpt")


@pytest.fixture(scope="module")
def flow_state(official_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(official_dir / "official-weights" / "flow_controlnet.ckpt")


def test_checkpoint_key_counts_match_manifest(official_dir, official_manifest, image_state, flow_state):
    unet_state = read_checkpoint(official_dir / "official-weights" / "unet.ckpt")
    counts = {
        "unet": len(unet_state),
        "image_controlnet": len(image_state),
        "flow_controlnet": len(flow_state),
    }
    assert counts == official_manifest["weights"]


@pytest.mark.parametrize("wrapping", ["bare", "state_dict", "controlnet"])
def test_wrapped_and_bare_files_load_the_same(official_dir, image_state, tmp_path, wrapping):
    path = tmp_path / "image.ckpt"
    payload = image_state if wrapping == "bare" else {wrapping: image_state, "global_step": 7}
    torch.save(payload, path)
    model = load_official_image_controlnet(official_dir / "sd15-tiny", path)
    loaded = model.state_dict()
    for key, value in image_state.items():
        torch.testing.assert_close(loaded[diffusers_key(key)], value.float(), rtol=0, atol=0)


def test_float16_weights_run_in_requested_dtype(official_dir, image_state):
    assert {value.dtype for value in image_state.values()} == {torch.float16}
    path = official_dir / "official-weights" / "image_controlnet.ckpt"
    for dtype in (torch.float32, torch.float64):
        model = load_official_image_controlnet(official_dir / "sd15-tiny", path, torch_dtype=dtype)
        assert {tensor.dtype for tensor in model.state_dict().values()} == {dtype}


def test_missing_and_unexpected_keys_are_listed(official_dir, image_state, tmp_path):
    broken = dict(image_state)
    dropped = "down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.norms.0.weight"
    del broken[dropped]
    broken["down_blocks.0.not_a_layer.weight"] = torch.zeros(3)
    path = tmp_path / "broken.ckpt"
    torch.save({"state_dict": broken}, path)
    with pytest.raises(CheckpointKeyError) as caught:
        load_official_image_controlnet(official_dir / "sd15-tiny", path)
    error = caught.value
    assert error.missing == ["down_blocks.1.motion_modules.0.transformer_blocks.0.norm1.weight"]
    assert error.unexpected == ["down_blocks.0.not_a_layer.weight"]
    assert "norm1.weight" in str(error) and "not_a_layer" in str(error) and "missing" in str(error)


def test_incomplete_lora_pair_is_reported(official_dir, flow_state, tmp_path):
    broken = dict(flow_state)
    key = next(key for key in broken if key.endswith(".lora_B.cmcm_weights.weight"))
    del broken[key]
    path = tmp_path / "flow.ckpt"
    torch.save(broken, path)
    with pytest.raises(CheckpointKeyError, match="camera") as caught:
        load_official_flow_controlnet(official_dir / "sd15-tiny", path)
    assert caught.value.missing == [key.replace(".lora_B.cmcm_weights.weight", ".lora_B")]


def test_shape_mismatch_is_reported(official_dir, image_state, tmp_path):
    broken = dict(image_state)
    broken["conv_in.bias"] = torch.zeros(broken["conv_in.bias"].shape[0] + 1, dtype=torch.float16)
    path = tmp_path / "shape.ckpt"
    torch.save(broken, path)
    with pytest.raises(CheckpointError, match="conv_in.bias"):
        load_official_image_controlnet(official_dir / "sd15-tiny", path)


class _NotWeights:
    """Pickling this needs code execution on load, which weights-only loading must refuse."""


def test_pickled_objects_are_refused(official_dir, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"conv_in.weight": torch.zeros(1)}, "payload": _NotWeights()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_lora_adapters_follow_the_file(official_dir, official_manifest, flow_state):
    model = load_official_flow_controlnet(
        official_dir / "sd15-tiny", official_dir / "official-weights" / "flow_controlnet.ckpt"
    )
    assert sorted(model.peft_config) == ["camera", "object"]
    rank = official_manifest["lora_rank"]
    for adapter, released in (("camera", "cmcm_weights"), ("object", "omcm_weights")):
        config = model.peft_config[adapter]
        assert config.r == rank and config.lora_alpha == rank
        modules = {
            key.split(f".lora_A.{released}.")[0] for key in flow_state if f".lora_A.{released}." in key
        }
        wrapped = {
            name
            for name, module in model.named_modules()
            if hasattr(module, "lora_A") and adapter in module.lora_A
        }
        assert wrapped == {diffusers_key(f"{name}.weight")[: -len(".weight")] for name in modules}
    state = model.state_dict()
    key = next(key for key in flow_state if ".motion_modules." in key and ".lora_B.omcm_weights." in key)
    ours = diffusers_key(key.replace(".lora_B.omcm_weights.weight", ".weight")).replace(
        ".weight", ".lora_B.object.weight"
    )
    torch.testing.assert_close(state[ours], flow_state[key].float(), rtol=0, atol=0)


def test_motion_layout_is_read_from_the_weights(official_dir, image_state):
    unet_state = read_checkpoint(official_dir / "official-weights" / "unet.ckpt")
    tables = [value for key, value in unet_state.items() if key.endswith("pos_encoder.pe")]
    unet_layout = motion_layout({diffusers_key(k): v for k, v in unet_state.items()})
    image_layout = motion_layout({diffusers_key(k): v for k, v in image_state.items()})
    assert unet_layout.max_seq_length == tables[0].shape[1]
    assert unet_layout.double_self_attention and not image_layout.double_self_attention
    assert not unet_layout.has_mid_block and not image_layout.has_mid_block
    layers = {
        key.split(".transformer_blocks.")[1].split(".")[0]
        for key in unet_state
        if key.startswith("down_blocks.0.motion_modules.0.") and ".transformer_blocks." in key
    }
    assert unet_layout.transformer_layers == len(layers)
