"""Personalised SD1.5 weights: DreamBooth single-file checkpoints and LoRA merges into UNet / text encoder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from imageconductor.models import CheckpointError
from imageconductor.models.personalize import load_personalized_checkpoint, merge_personalized_lora

_RESNET_LDM_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def ldm_unet_key(key: str, config: dict) -> str:
    """Test helper: the original (LDM) name of an SD1.5 UNet weight, the inverse of diffusers' converter."""
    per_block = config["layers_per_block"] + 1
    rules = [
        (r"time_embedding\.linear_1\.(.*)", lambda m: f"time_embed.0.{m[1]}"),
        (r"time_embedding\.linear_2\.(.*)", lambda m: f"time_embed.2.{m[1]}"),
        (r"conv_in\.(.*)", lambda m: f"input_blocks.0.0.{m[1]}"),
        (r"conv_norm_out\.(.*)", lambda m: f"out.0.{m[1]}"),
        (r"conv_out\.(.*)", lambda m: f"out.2.{m[1]}"),
        (
            r"down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(.*)",
            lambda m: (
                f"input_blocks.{1 + int(m[1]) * per_block + int(m[2])}.0.{_RESNET_LDM_NAMES[m[3]]}.{m[4]}"
            ),
        ),
        (
            r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)",
            lambda m: f"input_blocks.{1 + int(m[1]) * per_block + int(m[2])}.1.{m[3]}",
        ),
        (
            r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)",
            lambda m: f"input_blocks.{int(m[1]) * per_block + per_block}.0.op.{m[2]}",
        ),
        (
            r"mid_block\.resnets\.(\d)\.(\w+)\.(.*)",
            lambda m: f"middle_block.{2 * int(m[1])}.{_RESNET_LDM_NAMES[m[2]]}.{m[3]}",
        ),
        (r"mid_block\.attentions\.0\.(.*)", lambda m: f"middle_block.1.{m[1]}"),
        (
            r"up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(.*)",
            lambda m: f"output_blocks.{int(m[1]) * per_block + int(m[2])}.0.{_RESNET_LDM_NAMES[m[3]]}.{m[4]}",
        ),
        (
            r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)",
            lambda m: f"output_blocks.{int(m[1]) * per_block + int(m[2])}.1.{m[3]}",
        ),
        (
            r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)",
            lambda m: (
                f"output_blocks.{int(m[1]) * per_block + per_block - 1}."
                f"{2 if 'CrossAttn' in config['up_block_types'][int(m[1])] else 1}.conv.{m[2]}"
            ),
        ),
    ]
    for pattern, build in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return "model.diffusion_model." + build(match)
    raise KeyError(key)


def ldm_vae_key(key: str, num_blocks: int) -> str:
    """Test helper: the original (LDM) name of an SD VAE weight, the inverse of diffusers' converter."""

    def up(match: re.Match) -> str:  # diffusers numbers decoder blocks in reverse
        return f"decoder.up.{num_blocks - 1 - int(match[1])}"

    rules = [
        (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"encoder.down.{m[1]}.block.{m[2]}."),
        (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"encoder.down.{m[1]}.downsample."),
        (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"{up(m)}.block.{m[2]}."),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"{up(m)}.upsample."),
        (r"\.mid_block\.resnets\.(\d)\.", lambda m: f".mid.block_{int(m[1]) + 1}."),
        (r"\.mid_block\.attentions\.0\.", lambda m: ".mid.attn_1."),
        (r"conv_shortcut", lambda m: "nin_shortcut"),
        (r"conv_norm_out", lambda m: "norm_out"),
        (
            r"attn_1\.(group_norm|to_q|to_k|to_v|to_out\.0)\.",
            lambda m: "attn_1." + _VAE_ATTENTION[m[1]] + ".",
        ),
    ]
    for pattern, build in rules:
        key = re.sub(pattern, build, key)
    return "first_stage_model." + key


_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def test_dreambooth_checkpoint_replaces_sd_layers_only(
    official_dir, official_unet, official_text_encoder, tmp_path
):
    torch.manual_seed(0)
    vae = AutoencoderKL.from_pretrained(official_dir / "sd15-tiny" / "vae", local_files_only=True)
    before = {key: value.clone() for key, value in official_unet.state_dict().items()}
    spatial = {key: torch.randn_like(value) for key, value in before.items() if ".motion_modules." not in key}
    text = {key: torch.randn_like(value) for key, value in official_text_encoder.state_dict().items()}
    image = {key: torch.randn_like(value) for key, value in vae.state_dict().items()}
    nested = "" if hasattr(official_text_encoder, "text_model") else "text_model."
    checkpoint = {ldm_unet_key(key, official_unet.config): value for key, value in spatial.items()}
    checkpoint.update({f"cond_stage_model.transformer.{nested}{key}": value for key, value in text.items()})
    for key, value in image.items():
        ldm_key = ldm_vae_key(key, len(vae.config.down_block_types))
        checkpoint[ldm_key] = value[:, :, None, None] if ".attn_1." in ldm_key and value.ndim == 2 else value
    path = tmp_path / "dreambooth.safetensors"
    save_file(checkpoint, str(path))

    load_personalized_checkpoint(
        path, official_dir / "sd15-tiny", official_unet, vae=vae, text_encoder=official_text_encoder
    )

    for key, value in vae.state_dict().items():
        torch.testing.assert_close(value, image[key], rtol=0, atol=0, msg=key)

    after = official_unet.state_dict()
    for key, value in before.items():
        expected = spatial.get(key, value)
        torch.testing.assert_close(after[key], expected, rtol=0, atol=0, msg=key)
    for key, value in official_text_encoder.state_dict().items():
        torch.testing.assert_close(value, text[key], rtol=0, atol=0, msg=key)


def _kohya_lora(
    targets: dict[str, torch.nn.Module], rank: int, alpha: float, path: Path
) -> dict[str, torch.Tensor]:
    """Write a kohya-style LoRA for ``targets`` and return each target's expected merged weight."""
    state, expected = {}, {}
    for name, module in targets.items():
        weight = module.weight.detach()
        down = torch.randn(rank, weight.shape[1], *weight.shape[2:])
        up = torch.randn(weight.shape[0], rank, *([1] * (weight.ndim - 2)))
        delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
        state[f"{name}.lora_down.weight"] = down
        state[f"{name}.lora_up.weight"] = up
        state[f"{name}.alpha"] = torch.tensor(1.0)  # ignored, as by the released app
        expected[name] = weight + alpha * delta
    save_file(state, str(path))
    return expected


def _lora_targets(official_unet, official_text_encoder) -> dict[str, torch.nn.Module]:
    block = official_unet.down_blocks[0].attentions[0]
    attention = block.transformer_blocks[0].attn1
    encoder = (
        official_text_encoder.text_model.encoder
        if hasattr(official_text_encoder, "text_model")
        else official_text_encoder.encoder
    )
    return {
        "lora_unet_down_blocks_0_attentions_0_proj_in": block.proj_in,
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": attention.to_q,
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0": attention.to_out[0],
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": encoder.layers[0].self_attn.q_proj,
        "lora_te_text_model_encoder_layers_0_self_attn_out_proj": encoder.layers[0].self_attn.out_proj,
    }


def test_lora_is_merged_as_the_released_app_does(official_unet, official_text_encoder, tmp_path):
    torch.manual_seed(0)
    expected = _kohya_lora(
        _lora_targets(official_unet, official_text_encoder),
        rank=2,
        alpha=0.7,
        path=tmp_path / "style.safetensors",
    )
    attention = official_unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    untouched = attention.to_k.weight.detach().clone()

    merge_personalized_lora(tmp_path / "style.safetensors", official_unet, official_text_encoder, alpha=0.7)

    for name, module in _lora_targets(official_unet, official_text_encoder).items():
        assert type(module) in (torch.nn.Linear, torch.nn.Conv2d), f"{name} still wrapped by a LoRA layer"
        torch.testing.assert_close(module.weight, expected[name], msg=name)
    torch.testing.assert_close(attention.to_k.weight, untouched, rtol=0, atol=0)
    assert not getattr(official_unet, "peft_config", None)


def test_personalized_weights_must_be_safetensors(official_unet, tmp_path):
    path = tmp_path / "style.ckpt"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="safetensors"):
        merge_personalized_lora(path, official_unet)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        merge_personalized_lora(tmp_path / "missing.safetensors", official_unet)
