"""Personalised LoRAs as peft adapters: what they compute, rescaling, removal (bit-identical) and fusing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imageconductor.models import CheckpointError
from imageconductor.models.adapters_personal import (
    fuse_loras,
    load_lora,
    lora_scales,
    remove_lora,
    set_lora_scales,
)


def _encoder(official_text_encoder):
    return (
        official_text_encoder.text_model.encoder
        if hasattr(official_text_encoder, "text_model")
        else official_text_encoder.encoder
    )


def write_kohya_lora(
    path: Path, official_unet, official_text_encoder, rank: int = 2
) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """A kohya-style LoRA on three layers; returns each layer and its delta ``up @ down`` (file alphas are 1,
    which the released rule ignores)."""
    attention = official_unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    targets = {
        "lora_unet_down_blocks_0_attentions_0_proj_in": official_unet.down_blocks[0].attentions[0].proj_in,
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": attention.to_q,
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": _encoder(official_text_encoder)
        .layers[0]
        .self_attn.q_proj,
    }
    state, deltas = {}, {}
    for name, module in targets.items():
        weight = module.weight
        down = torch.randn(rank, weight.shape[1], *weight.shape[2:])
        up = torch.randn(weight.shape[0], rank, *([1] * (weight.ndim - 2)))
        state[f"{name}.lora_down.weight"] = down
        state[f"{name}.lora_up.weight"] = up
        state[f"{name}.alpha"] = torch.tensor(1.0)
        deltas[name] = (module, (up.flatten(1) @ down.flatten(1)).reshape(weight.shape))
    save_file(state, str(path))
    return deltas


def write_diffusers_lora(
    path: Path, official_unet, rank: int = 3
) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """A diffusers-format LoRA (``unet.<module>.lora_A/B.weight``) on the same ``to_q`` and on ``to_k``."""
    attention = official_unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    prefix = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    state, deltas = {}, {}
    for name in ("to_q", "to_k"):
        module = getattr(attention, name)
        down, up = torch.randn(rank, module.weight.shape[1]), torch.randn(module.weight.shape[0], rank)
        state[f"unet.{prefix}.{name}.lora_A.weight"] = down
        state[f"unet.{prefix}.{name}.lora_B.weight"] = up
        deltas[name] = (module, up @ down)
    save_file(state, str(path))
    return deltas


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_adapters_add_scaled_deltas_rescale_and_remove_bit_identically(
    official_unet, official_text_encoder, tmp_path
):
    torch.manual_seed(0)
    unet_before, text_before = _snapshot(official_unet), _snapshot(official_text_encoder)
    attention = official_unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    weight_q = attention.to_q.weight.detach().clone()
    kohya = write_kohya_lora(tmp_path / "style.safetensors", official_unet, official_text_encoder)
    diffusers_format = write_diffusers_lora(tmp_path / "subject.safetensors", official_unet)

    assert (
        load_lora(tmp_path / "style.safetensors", official_unet, official_text_encoder, scale=0.6) == "style"
    )
    load_lora(
        tmp_path / "subject.safetensors",
        official_unet,
        official_text_encoder,
        adapter_name="subject",
        scale=1.5,
    )
    assert lora_scales(official_unet) == {"style": 0.6, "subject": 1.5}
    assert lora_scales(official_text_encoder) == {"style": 0.6}

    x = torch.randn(5, weight_q.shape[1])
    delta_style = kohya["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"][1]
    delta_subject = diffusers_format["to_q"][1]
    with torch.no_grad():
        expected = x @ (weight_q + 0.6 * delta_style + 1.5 * delta_subject).T
        torch.testing.assert_close(attention.to_q(x), expected, rtol=1e-5, atol=1e-5)
        set_lora_scales({"subject": 0.0, "style": 2.0}, official_unet, official_text_encoder)
        torch.testing.assert_close(
            attention.to_q(x),
            x @ (weight_q + 2.0 * delta_style).T,
            rtol=1e-5,
            atol=1e-5,
        )
    with pytest.raises(ValueError, match="unknown LoRA adapter"):
        set_lora_scales({"missing": 1.0}, official_unet)

    # Loading a name again replaces it (nothing piles up).
    load_lora(tmp_path / "style.safetensors", official_unet, official_text_encoder, scale=2.0)
    assert sorted(official_unet.peft_config) == ["style", "subject"]

    remove_lora("subject", official_unet, official_text_encoder)
    assert lora_scales(official_unet) == {"style": 2.0}
    remove_lora(None, official_unet, official_text_encoder)
    for before, model in ((unet_before, official_unet), (text_before, official_text_encoder)):
        after = model.state_dict()
        assert list(after) == list(before)
        for key, value in before.items():
            assert torch.equal(after[key], value), key
    assert type(attention.to_q) is torch.nn.Linear
    assert not getattr(official_unet, "peft_config", None)


def test_fuse_is_the_released_merge(official_unet, official_text_encoder, tmp_path):
    torch.manual_seed(1)
    kohya = write_kohya_lora(tmp_path / "style.safetensors", official_unet, official_text_encoder)
    diffusers_format = write_diffusers_lora(tmp_path / "subject.safetensors", official_unet)
    expected = {name: module.weight.detach() + 0.7 * delta for name, (module, delta) in kohya.items()}
    to_k, delta_k = diffusers_format["to_k"]
    expected_k = to_k.weight.detach() + 0.3 * delta_k
    q_name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    expected[q_name] = expected[q_name] + 0.3 * diffusers_format["to_q"][1]

    load_lora(tmp_path / "style.safetensors", official_unet, official_text_encoder, scale=0.7)
    load_lora(tmp_path / "subject.safetensors", official_unet, official_text_encoder, scale=0.3)
    fuse_loras(official_unet, official_text_encoder)

    for name, (module, _) in kohya.items():
        assert type(module) in (torch.nn.Linear, torch.nn.Conv2d), name
        torch.testing.assert_close(module.weight, expected[name], rtol=1e-6, atol=1e-6, msg=name)
    torch.testing.assert_close(to_k.weight, expected_k, rtol=1e-6, atol=1e-6)
    assert lora_scales(official_unet) == {} and not getattr(official_unet, "peft_config", None)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_only_safetensors_are_read(official_unet, tmp_path, suffix):
    path = tmp_path / f"style{suffix}"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"must be a \.safetensors file"):
        load_lora(path, official_unet)
    assert not getattr(official_unet, "peft_config", None)
