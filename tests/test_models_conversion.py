"""Loading does not depend on the fixture's sizes: other channels, heads, layers, sequence length, LoRA ranks
and wrappings, written with the released key names, load back exactly and run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from imageconductor.conditioning import image_condition
from imageconductor.models import (
    ImageConductorControlNetModel,
    ImageConductorUNetModel,
    load_official_flow_controlnet,
    load_official_image_controlnet,
    load_official_unet,
    predict_noise,
)
from imageconductor.models.convert_official import MotionLayout, controlnet_config, unet_config
from imageconductor.models.lora import lora_config_for_modules

SEQUENCE_LENGTH = 24
FRAMES = 5
RANKS = {"default": 4, "odd": 2}


def released_keys(key: str, attentions: int) -> list[str]:
    """Test helper: the released (AnimateDiff) name(s) of a diffusers key, the inverse of the converter."""
    if ".motion_modules." not in key:
        return [key]
    key = re.sub(r"(\.motion_modules\.\d+\.)", r"\1temporal_transformer.", key)
    if key.endswith(".pos_embed.pe"):
        return [key.replace(".pos_embed.", f".attention_blocks.{i}.pos_encoder.") for i in range(attentions)]
    for ours, theirs in (
        (".attn1.", ".attention_blocks.0."),
        (".attn2.", ".attention_blocks.1."),
        (".norm1.", ".norms.0."),
        (".norm2.", ".norms.1."),
        (".norm3.", ".ff_norm."),
    ):
        key = key.replace(ours, theirs)
    return [key]


def randomize(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(0.2 * torch.randn(param.shape, generator=generator))


def released_state(model: torch.nn.Module, attentions: int) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in model.state_dict().items():
        for name in released_keys(key, attentions):
            state[name] = value.clone()
    return state


@pytest.fixture(scope="module")
def sd_folder(official_dir: Path, tmp_path_factory) -> Path:
    """The tiny SD folder with a different UNet config and no UNet weights (the checkpoint holds them all)."""
    folder = tmp_path_factory.mktemp("sd-other")
    for sub in ("vae", "text_encoder", "tokenizer", "scheduler"):
        shutil.copytree(official_dir / "sd15-tiny" / sub, folder / sub)
    config = json.loads((official_dir / "sd15-tiny" / "unet" / "config.json").read_text())
    config.update(block_out_channels=[32, 64, 96, 96], layers_per_block=1, attention_head_dim=4)
    (folder / "unet").mkdir()
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    return folder


def sd_config(folder: Path) -> dict:
    return json.loads((folder / "unet" / "config.json").read_text())


def test_unet_with_other_sizes_loads_exactly(sd_folder, tmp_path):
    layout = MotionLayout(SEQUENCE_LENGTH, 1, double_self_attention=True, has_mid_block=False)
    unet = ImageConductorUNetModel.from_config(unet_config(sd_config(sd_folder), layout))
    randomize(unet, 0)
    path = tmp_path / "unet.ckpt"
    torch.save({"state_dict": released_state(unet, attentions=2), "global_step": 3}, path)

    loaded = load_official_unet(sd_folder, path)

    assert loaded.config.motion_max_seq_length == SEQUENCE_LENGTH
    assert loaded.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == 4  # SD1.5 head naming
    assert loaded.down_blocks[0].motion_modules[0].transformer_blocks[0].attn1.heads == 8
    for key, value in unet.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)


def _lora_targets(model: torch.nn.Module) -> dict[str, int]:
    names = [name for name, _ in model.named_modules() if name.endswith((".to_q", ".conv1", ".proj_in"))]
    return {
        name: RANKS["odd"] if index == 0 else RANKS["default"] for index, name in enumerate(sorted(names))
    }


def test_controlnets_with_other_sizes_load_exactly_and_run(sd_folder, tmp_path):
    layout = MotionLayout(SEQUENCE_LENGTH, 1, double_self_attention=False, has_mid_block=False)
    image_net = ImageConductorControlNetModel.from_config(
        controlnet_config(sd_config(sd_folder), layout, 4, True)
    )
    flow_net = ImageConductorControlNetModel.from_config(
        controlnet_config(sd_config(sd_folder), layout, 128, False)
    )
    assert flow_net.mid_block.attentions[0].transformer_blocks[0].attn1.heads == 8  # released mid-block heads
    assert image_net.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == 4
    targets = _lora_targets(flow_net)
    for name in ("camera", "object"):
        flow_net.add_adapter(lora_config_for_modules(targets), name)
    randomize(image_net, 1)
    randomize(flow_net, 2)

    image_path, flow_path = tmp_path / "image.ckpt", tmp_path / "flow.ckpt"
    torch.save(released_state(image_net, attentions=1), image_path)
    released_flow = {
        key.replace(".lora_A.object.", ".lora_A.omcm_weights.")
        .replace(".lora_B.object.", ".lora_B.omcm_weights.")
        .replace(".lora_A.camera.", ".lora_A.cmcm_weights.")
        .replace(".lora_B.camera.", ".lora_B.cmcm_weights."): value
        for key, value in released_state(flow_net, attentions=1).items()
    }
    assert any(".temporal_transformer." in key and ".base_layer." in key for key in released_flow)
    torch.save({"controlnet": released_flow}, flow_path)

    loaded_image = load_official_image_controlnet(sd_folder, image_path)
    loaded_flow = load_official_flow_controlnet(sd_folder, flow_path)

    for original, loaded in ((image_net, loaded_image), (flow_net, loaded_flow)):
        state = loaded.state_dict()
        assert state.keys() == original.state_dict().keys()
        for key, value in original.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    for name in ("camera", "object"):
        config = loaded_flow.peft_config[name]
        assert config.r == RANKS["default"] and list(config.rank_pattern.values()) == [RANKS["odd"]]

    unet = ImageConductorUNetModel.from_config(
        unet_config(sd_config(sd_folder), MotionLayout(SEQUENCE_LENGTH, 1, True, False))
    )
    h, w = 4, 6
    sample = torch.randn(2, 4, FRAMES, h, w)
    text = torch.randn(2, 77, sd_config(sd_folder)["cross_attention_dim"])
    cond = image_condition(torch.randn(1, 4, 1, h, w), FRAMES)
    flow = torch.randn(1, 2, FRAMES, 8 * h, 8 * w)
    with torch.no_grad():
        eps = predict_noise(
            unet, loaded_image, loaded_flow, sample, 500, text, cond, flow, ["camera", "none"]
        )
        single = predict_noise(unet, loaded_image, loaded_flow, sample[1:], 500, text[1:], cond, flow, "none")
    assert eps.shape == sample.shape
    torch.testing.assert_close(eps[1:], single, rtol=1e-4, atol=1e-5)
