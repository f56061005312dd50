"""Personalised SD1.5 LoRAs as peft adapters on the UNet and the text encoder: load, rescale, remove, fuse.

A LoRA file (``.safetensors``; kohya / A1111 or diffusers key names, converted by diffusers'
``StableDiffusionLoraLoaderMixin.lora_state_dict``) becomes a named peft adapter on the video UNet's SD
layers and on the CLIP text encoder. Every loaded adapter is active at its own scale, the released app's
``alpha``: a targeted layer computes ``W x + Σ scale · up (down x)`` (the files' own ``.alpha`` values are
ignored, as the released app does). Loading a name again replaces that adapter, so nothing piles up;
removing the last adapter unwraps the peft layers and leaves every base weight bit-identical to before.
`fuse_loras` merges the adapters into the weights as the released app does, ``W += scale · up @ down``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.utils import recurse_remove_peft_layers
from diffusers.utils.state_dict_utils import StateDictType, convert_state_dict_to_peft
from safetensors.torch import load_file
from torch import nn

from imageconductor.models.convert_official import CheckpointError
from imageconductor.models.lora import tuner_layers

__all__ = [
    "DEFAULT_LORA_SCALE",
    "fuse_loras",
    "load_lora",
    "lora_scales",
    "read_safetensors",
    "remove_lora",
    "set_lora_scales",
]

#: The released app's default LoRA strength.
DEFAULT_LORA_SCALE = 0.8
_SCALES_ATTRIBUTE = "_imageconductor_lora_scales"
_TARGETS = ("unet", "text_encoder")


def read_safetensors(path: str | Path, what: str = "personalized weights") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; anything else (pickles: ``.ckpt``, ``.pt``, ``.bin``) is
    refused with `CheckpointError`, a missing file with FileNotFoundError."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path}: {what} must be a .safetensors file (pickled .ckpt/.pt/.bin files are refused: they can "
            "run code when read); convert it to safetensors first"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return load_file(str(path))


def lora_scales(model: nn.Module) -> dict[str, float]:
    """The personalised adapters loaded into ``model`` and their scales."""
    return dict(getattr(model, _SCALES_ATTRIBUTE, {}))


def _apply_scales(model: nn.Module) -> None:
    """Make every personalised adapter of ``model`` active at its scale (gradients stay off)."""
    scales = lora_scales(model)
    for layer in tuner_layers(model):
        present = [name for name in scales if name in layer.scaling]
        layer.set_adapter(present)
        for name in present:
            layer.set_scale(name, scales[name])
        for parameter in layer.parameters():
            parameter.requires_grad_(False)


def _models(unet: nn.Module, text_encoder: nn.Module | None) -> dict[str, nn.Module]:
    return {
        name: model for name, model in zip(_TARGETS, (unet, text_encoder), strict=True) if model is not None
    }


def _text_encoder_keys_to_peft(lora: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Text-encoder keys in peft's names. diffusers converts kohya names to its old ``to_q_lora.down``
    form and recognises that form only by an ``out_proj`` LoRA; naming the form here lifts that need."""
    text = {key: value for key, value in lora.items() if key.startswith("text_encoder.")}
    if not text or any(".lora_A." in key for key in text):
        return lora
    converted = convert_state_dict_to_peft(text, original_type=StateDictType.DIFFUSERS_OLD)
    return {**{key: value for key, value in lora.items() if key not in text}, **converted}


def load_lora(
    path: str | Path,
    unet: nn.Module,
    text_encoder: nn.Module | None = None,
    adapter_name: str | None = None,
    scale: float = DEFAULT_LORA_SCALE,
) -> str:
    """Load a LoRA file as the peft adapter ``adapter_name`` (default: the file's stem) at ``scale``.

    A loaded adapter of the same name is replaced. Returns the adapter name. Raises `CheckpointError` when
    the file is not safetensors or holds no LoRA for the UNet or the text encoder.
    """
    path = Path(path)
    name = adapter_name or path.stem
    state = read_safetensors(path, "a LoRA")
    lora = _text_encoder_keys_to_peft(StableDiffusionLoraLoaderMixin.lora_state_dict(state)[0])
    models = _models(unet, text_encoder)
    found = {target for target in models if any(key.startswith(f"{target}.") for key in lora)}
    if not found:
        raise CheckpointError(f"{path}: no LoRA weights for the UNet or the text encoder")
    if any(name in lora_scales(model) for model in models.values()):
        remove_lora(name, unet, text_encoder)
    for target in sorted(found):
        model = models[target]
        with warnings.catch_warnings():  # several adapters on one model are the point here
            warnings.filterwarnings("ignore", message=".*peft_config.*")
            if target == "unet":
                StableDiffusionLoraLoaderMixin.load_lora_into_unet(lora, None, model, adapter_name=name)
            else:
                StableDiffusionLoraLoaderMixin.load_lora_into_text_encoder(
                    lora, None, model, adapter_name=name
                )
        setattr(model, _SCALES_ATTRIBUTE, {**lora_scales(model), name: float(scale)})
        _apply_scales(model)
    return name


def set_lora_scales(
    scales: Mapping[str, float], unet: nn.Module, text_encoder: nn.Module | None = None
) -> None:
    """Rescale loaded adapters (``0`` switches one off); adapters not named keep their scale."""
    models = _models(unet, text_encoder)
    known = set().union(*(lora_scales(model) for model in models.values()))
    unknown = sorted(set(scales) - known)
    if unknown:
        raise ValueError(f"unknown LoRA adapter(s) {unknown}; loaded: {sorted(known) or 'none'}")
    for model in models.values():
        current = lora_scales(model)
        current.update({name: float(value) for name, value in scales.items() if name in current})
        setattr(model, _SCALES_ATTRIBUTE, current)
        _apply_scales(model)


def _unwrap(model: nn.Module) -> None:
    """Replace every peft layer by its base layer and forget the peft config."""
    recurse_remove_peft_layers(model)
    if hasattr(model, "peft_config"):
        del model.peft_config
    if getattr(model, "_hf_peft_config_loaded", None) is not None:
        model._hf_peft_config_loaded = False
    setattr(model, _SCALES_ATTRIBUTE, {})


def _check_only_personal(model: nn.Module, what: str) -> None:
    others = sorted(set(getattr(model, "peft_config", {}) or {}) - set(lora_scales(model)))
    if others:
        raise CheckpointError(f"the {what} carries other peft adapters {others}; cannot unwrap it")


def remove_lora(name: str | None, unet: nn.Module, text_encoder: nn.Module | None = None) -> None:
    """Remove the adapter ``name`` (``None``: all personalised adapters). With none left, the peft layers
    are unwrapped: the model's state dict is the one before the first `load_lora`, bit for bit."""
    for target, model in _models(unet, text_encoder).items():
        scales = lora_scales(model)
        names = list(scales) if name is None else [name] if name in scales else []
        for adapter in names:
            for layer in tuner_layers(model):
                if adapter in layer.scaling:
                    layer.delete_adapter(adapter)
            getattr(model, "peft_config", {}).pop(adapter, None)
            del scales[adapter]
        setattr(model, _SCALES_ATTRIBUTE, scales)
        if names and not scales:
            _check_only_personal(model, target)
            _unwrap(model)
        elif names:
            _apply_scales(model)


def fuse_loras(
    unet: nn.Module, text_encoder: nn.Module | None = None, names: Sequence[str] | None = None
) -> None:
    """Merge the personalised adapters into the weights as the released app does, ``W += scale · up @ down``
    per adapter at its current scale, and remove the peft layers. Irreversible: reload the base weights to
    undo it. ``names``: the adapters to merge (default all); every other personalised adapter is dropped.
    """
    for target, model in _models(unet, text_encoder).items():
        scales = lora_scales(model)
        if not scales:
            continue
        _check_only_personal(model, target)
        merged = [name for name in scales if names is None or name in names]
        for layer in tuner_layers(model):
            present = [name for name in merged if name in layer.scaling]
            for name in present:
                layer.set_scale(name, scales[name])
            if present:
                layer.merge(adapter_names=present)
        _unwrap(model)
