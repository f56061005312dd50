"""Personalised SD1.5 weights (the released app's "personalized" models): DreamBooth checkpoints and the
released app's one-shot LoRA merge.

* A DreamBooth-style single-file SD1.5 checkpoint (``.safetensors``, original LDM key names) replaces the
  UNet's SD layers (motion modules stay), the VAE and the text encoder. Conversion uses diffusers'
  single-file loaders with the LOCAL SD1.5 folder as config, so nothing is downloaded.
* `merge_personalized_lora` merges a LoRA file into the weights as the released app does,
  ``W += alpha * up @ down``; it is `imageconductor.models.adapters_personal.load_lora` followed by
  `~imageconductor.models.adapters_personal.fuse_loras`. Adapters that stay switchable and removable are
  in :mod:`imageconductor.models.adapters_personal`.

Only safetensors files are accepted here (no pickle).
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
from torch import nn

from imageconductor.models.adapters_personal import (
    DEFAULT_LORA_SCALE,
    fuse_loras,
    load_lora,
    lora_scales,
    read_safetensors,
)
from imageconductor.models.convert_official import CheckpointError, CheckpointKeyError
from imageconductor.models.lora import adapter_names

#: The released app's default LoRA merge strength.
DEFAULT_LORA_ALPHA = DEFAULT_LORA_SCALE
_MERGE_ADAPTER = "personalized"


def load_personalized_checkpoint(
    path: str | Path,
    pretrained_model_path: str | Path,
    unet: nn.Module,
    vae: AutoencoderKL | None = None,
    text_encoder: nn.Module | None = None,
) -> None:
    """Replace the SD1.5 layers of ``unet`` (and ``vae`` / ``text_encoder`` if given) by a DreamBooth
    single-file checkpoint, in place. ``pretrained_model_path`` is the SD1.5 folder used as config."""
    checkpoint = read_safetensors(path)
    if adapter_names(unet):
        raise CheckpointError(f"cannot load {path}: remove the UNet's LoRA adapters first")
    folder = str(pretrained_model_path)
    spatial = UNet2DConditionModel.from_single_file(
        checkpoint, config=folder, subfolder="unet", local_files_only=True
    ).state_dict()
    own = unet.state_dict()
    unexpected = [key for key in spatial if key not in own]
    uncovered = [key for key in own if key not in spatial and ".motion_modules." not in key]
    if unexpected or uncovered:
        raise CheckpointKeyError(f"personalized UNet ({path})", uncovered, unexpected)
    unet.load_state_dict(spatial, strict=False)
    if vae is not None:
        converted = AutoencoderKL.from_single_file(
            checkpoint, config=folder, subfolder="vae", local_files_only=True
        )
        vae.load_state_dict(converted.state_dict())
    if text_encoder is not None:
        weights = _align_text_encoder_keys(convert_ldm_clip_checkpoint(checkpoint), text_encoder, prefix="")
        if not weights:
            raise CheckpointError(f"{path}: no text-encoder weights (cond_stage_model.transformer.*) found")
        missing, unexpected = text_encoder.load_state_dict(weights, strict=False)
        missing = [key for key in missing if not key.endswith("position_ids")]
        unexpected = [key for key in unexpected if not key.endswith("position_ids")]
        if missing or unexpected:
            raise CheckpointKeyError(f"personalized text encoder ({path})", missing, unexpected)


def _align_text_encoder_keys(weights: dict, text_encoder: nn.Module, prefix: str) -> dict:
    """transformers >= 5 dropped CLIPTextModel's ``text_model.`` level; map ``<prefix>text_model.`` keys."""
    if hasattr(text_encoder, "text_model"):
        return weights
    nested = f"{prefix}text_model."
    return {
        prefix + key[len(nested) :] if key.startswith(nested) else key: value
        for key, value in weights.items()
    }


def merge_personalized_lora(
    path: str | Path,
    unet: nn.Module,
    text_encoder: nn.Module | None = None,
    alpha: float = DEFAULT_LORA_ALPHA,
) -> None:
    """Merge a personalised SD1.5 LoRA into ``unet`` (and ``text_encoder``) weights, in place.

    Each targeted weight becomes ``W + alpha * up @ down`` (the released app's rule, file alphas ignored).
    Raises if the file holds no LoRA for these models or if a model already carries personalised adapters.
    """
    for model in (unet, text_encoder):
        if model is not None and (lora_scales(model) or adapter_names(model)):
            raise CheckpointError(f"cannot merge {path}: the model already carries peft adapters")
    load_lora(path, unet, text_encoder, adapter_name=_MERGE_ADAPTER, scale=alpha)
    fuse_loras(unet, text_encoder)
