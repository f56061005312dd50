"""Personalised SD1.5 weights (the released app's "personalized" models) merged into our UNet / text encoder.

* A DreamBooth-style single-file SD1.5 checkpoint (``.safetensors``, original LDM key names) replaces the
  UNet's SD layers (motion modules stay), the VAE and the text encoder. Conversion uses diffusers'
  single-file loaders with the LOCAL SD1.5 folder as config, so nothing is downloaded.
* A LoRA file (``.safetensors``; kohya / A1111 or diffusers format) is merged into the UNet and text encoder
  weights as the released app does: ``W += alpha * up @ down`` (the file's own ``.alpha`` values are
  ignored, as there). Merging happens once per call; load the base weights again to undo it.

Only safetensors files are accepted here (no pickle).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.loaders.lora_base import fuse_text_encoder_lora
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
from diffusers.utils import recurse_remove_peft_layers
from safetensors.torch import load_file
from torch import nn

from imageconductor.models.convert_official import CheckpointError, CheckpointKeyError
from imageconductor.models.lora import adapter_names

#: The released app's default LoRA merge strength.
DEFAULT_LORA_ALPHA = 0.8
_MERGE_ADAPTER = "personalized"


def _read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"personalized weights not found: {path}")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: personalized weights must be a .safetensors file")
    return load_file(str(path))


def load_personalized_checkpoint(
    path: str | Path,
    pretrained_model_path: str | Path,
    unet: nn.Module,
    vae: AutoencoderKL | None = None,
    text_encoder: nn.Module | None = None,
) -> None:
    """Replace the SD1.5 layers of ``unet`` (and ``vae`` / ``text_encoder`` if given) by a DreamBooth
    single-file checkpoint, in place. ``pretrained_model_path`` is the SD1.5 folder used as config."""
    checkpoint = _read_safetensors(path)
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


def _merge_and_remove(model: nn.Module, scale: float) -> None:
    fuse_text_encoder_lora(model, lora_scale=scale, adapter_names=[_MERGE_ADAPTER])
    recurse_remove_peft_layers(model)
    if hasattr(model, "peft_config"):
        del model.peft_config
    if getattr(model, "_hf_peft_config_loaded", None) is not None:
        model._hf_peft_config_loaded = False


def merge_personalized_lora(
    path: str | Path,
    unet: nn.Module,
    text_encoder: nn.Module | None = None,
    alpha: float = DEFAULT_LORA_ALPHA,
) -> None:
    """Merge a personalised SD1.5 LoRA into ``unet`` (and ``text_encoder``) weights, in place.

    Each targeted weight becomes ``W + alpha * up @ down`` (the released app's rule). Raises if the file
    holds no LoRA for these models or if a model already carries peft adapters.
    """
    state = _read_safetensors(path)
    lora, _ = StableDiffusionLoraLoaderMixin.lora_state_dict(
        state
    )  # converts kohya/A1111 names; alphas ignored
    targets = {"unet": unet, "text_encoder": text_encoder}
    found = {name for name in targets if any(key.startswith(f"{name}.") for key in lora)}
    if not found & {name for name, model in targets.items() if model is not None}:
        raise CheckpointError(f"{path}: no LoRA weights for the UNet or the text encoder")
    for name, model in targets.items():
        if model is None or name not in found:
            continue
        if adapter_names(model) or getattr(model, "peft_config", None):
            raise CheckpointError(f"cannot merge {path}: the {name} already carries peft adapters")
        if name == "unet":
            StableDiffusionLoraLoaderMixin.load_lora_into_unet(lora, None, model, adapter_name=_MERGE_ADAPTER)
        else:
            StableDiffusionLoraLoaderMixin.load_lora_into_text_encoder(
                lora, None, model, adapter_name=_MERGE_ADAPTER
            )
        _merge_and_remove(model, alpha)
