"""Load the authors' released checkpoints (AnimateDiff / SparseCtrl key names, peft LoRA) into our models.

Facts handled here:

* Pickled files are read with ``torch.load(..., weights_only=True)`` only; a file may hold a bare state dict
  or one wrapped under ``"state_dict"`` / ``"controlnet"``; non-tensor entries (``global_step``,
  ``animatediff_config``) are ignored. Tensors may be stored in float16; models run in the requested dtype.
* Motion-module names are mapped to diffusers' (``temporal_transformer.`` dropped, ``attention_blocks.0/1``
  -> ``attn1/attn2``, ``norms.0/1`` -> ``norm1/norm2``, ``ff_norm`` -> ``norm3``, the per-attention
  ``pos_encoder.pe`` -> the block's shared ``pos_embed.pe``).
* The UNet's SD1.5 layers come from the diffusers folder (``unet/`` config in the old SD1.5 form, weights
  from its safetensors) and are overridden by whatever ``unet.ckpt`` holds (it holds the whole UNet).
* The flow ControlNet's LoRA keys ``<module>.lora_A.<adapter>.weight`` become peft adapters (rank from the
  ``lora_A`` shapes, alpha = rank unless told otherwise, targets = exactly the modules having LoRA keys),
  renamed ``omcm_weights`` -> ``object`` and ``cmcm_weights`` -> ``camera``.
* Sizes (channels, sequence length, layer counts, rank) are read from the files, never assumed; the few
  constants of the released architecture that the weights cannot reveal (8 temporal heads, 8 heads in the
  ControlNet mid block, 32 GroupNorm groups in motion modules) are named below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from accelerate import init_empty_weights
from torch import nn

from imageconductor.models.controlnets import ImageConductorControlNetModel
from imageconductor.models.lora import lora_config_for_modules
from imageconductor.models.unet import ImageConductorUNetModel

#: Temporal attention heads of every released motion module (config value, not visible in the weights).
OFFICIAL_MOTION_HEADS = 8
#: The released ControlNets force ``num_attention_heads = 8``, which sets the heads of their mid block.
OFFICIAL_CONTROLNET_MID_HEADS = 8
#: GroupNorm groups of the released motion modules (a constant there; diffusers uses the UNet's value).
OFFICIAL_MOTION_NORM_GROUPS = 32
#: Released LoRA adapter names -> our adapter names.
OFFICIAL_ADAPTER_NAMES: dict[str, str] = {"omcm_weights": "object", "cmcm_weights": "camera"}

_WRAPPER_KEYS = ("state_dict", "controlnet", "model", "module")
# A deterministic sinusoid table; the released loader tolerates it missing, so do we.
_OPTIONAL_KEY = re.compile(r"\.pos_embed\.pe$")
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])\.(?P<adapter>[^.]+)\.weight$")
_MOTION_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.temporal_transformer\."), "."),
    (re.compile(r"\.attention_blocks\.\d+\.pos_encoder\.pe$"), ".pos_embed.pe"),
    (re.compile(r"\.attention_blocks\.0\."), ".attn1."),
    (re.compile(r"\.attention_blocks\.1\."), ".attn2."),
    (re.compile(r"\.norms\.0\."), ".norm1."),
    (re.compile(r"\.norms\.1\."), ".norm2."),
    (re.compile(r"\.ff_norm\."), ".norm3."),
)
_MOTION_LAYER = re.compile(
    r"^(?P<block>(?:down|up)_blocks\.\d+|mid_block)\.motion_modules\.\d+\.transformer_blocks\.(?P<layer>\d+)\."
    r"(?P<attn>attn[12])?"
)
_BLOCK_TYPES = {
    "CrossAttnDownBlock2D": "CrossAttnDownBlockMotion",
    "CrossAttnDownBlock3D": "CrossAttnDownBlockMotion",
    "CrossAttnDownBlockMotion": "CrossAttnDownBlockMotion",
    "DownBlock2D": "DownBlockMotion",
    "DownBlock3D": "DownBlockMotion",
    "DownBlockMotion": "DownBlockMotion",
    "UpBlock2D": "UpBlockMotion",
    "UpBlock3D": "UpBlockMotion",
    "UpBlockMotion": "UpBlockMotion",
    "CrossAttnUpBlock2D": "CrossAttnUpBlockMotion",
    "CrossAttnUpBlock3D": "CrossAttnUpBlockMotion",
    "CrossAttnUpBlockMotion": "CrossAttnUpBlockMotion",
}
# SD1.5 UNet options whose non-default values the released video UNet does not support.
_UNSUPPORTED_SD_OPTIONS: dict[str, Any] = {
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "class_embed_type": None,
    "num_class_embeds": None,
    "addition_embed_type": None,
    "encoder_hid_dim": None,
    "time_embedding_type": "positional",
    "resnet_time_scale_shift": "default",
    "dual_cross_attention": False,
    "only_cross_attention": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
}


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the model it is loaded into."""


class CheckpointKeyError(CheckpointError):
    """A checkpoint's keys do not match the model: lists the missing and unexpected keys."""

    def __init__(self, what: str, missing: Iterable[str], unexpected: Iterable[str], shown: int = 20) -> None:
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        lines = [f"{what}: {len(self.missing)} missing and {len(self.unexpected)} unexpected key(s)"]
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                more = f" ... and {len(keys) - shown} more" if len(keys) > shown else ""
                lines.append(f"  {label}: " + ", ".join(keys[:shown]) + more)
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class MotionLayout:
    """What a checkpoint's motion modules look like (read from key names and shapes)."""

    max_seq_length: int
    transformer_layers: int
    double_self_attention: bool
    has_mid_block: bool


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a pickled torch file (weights only, never executing code).

    Unwraps ``{"state_dict": ...}`` / ``{"controlnet": ...}`` wrappers, drops non-tensor entries and a
    ``module.`` prefix shared by every key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        state: Any = safetensors.torch.load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors come in many types
            raise CheckpointError(
                f"cannot read {path} as a weights-only torch checkpoint: {error}"
            ) from error
    while isinstance(state, Mapping):
        wrapped = next((state[key] for key in _WRAPPER_KEYS if isinstance(state.get(key), Mapping)), None)
        if wrapped is None:
            break
        state = wrapped
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    tensors = {str(key): value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return tensors


def diffusers_key(key: str) -> str:
    """Map one AnimateDiff-style key (or module path) to diffusers' name; other keys pass unchanged."""
    if ".motion_modules." not in key:
        return key
    for pattern, replacement in _MOTION_KEY_RULES:
        key = pattern.sub(replacement, key)
    return key


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Rename a released state dict to diffusers' names (the two positional tables of a block merge)."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = diffusers_key(key)
        if new_key in converted:
            if not _OPTIONAL_KEY.search(new_key) or not torch.equal(converted[new_key], value):
                raise CheckpointError(
                    f"{source}: keys map to the same diffusers key {new_key!r} with different values "
                    "(diffusers shares one positional table between the attentions of a motion block)"
                )
            continue
        converted[new_key] = value
    return converted


def motion_layout(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> MotionLayout:
    """Read the motion-module layout from a diffusers-named state dict."""
    layers: dict[str, set[int]] = {}
    attentions: set[str] = set()
    for key in state_dict:
        match = _MOTION_LAYER.match(key)
        if match:
            layers.setdefault(match["block"], set()).add(int(match["layer"]))
            if match["attn"]:
                attentions.add(match["attn"])
    if not layers:
        raise CheckpointError(
            f"{source}: no motion modules found (expected keys like '...motion_modules.0...')"
        )
    counts = {max(found) + 1 for found in layers.values()}
    if len(counts) != 1:
        raise CheckpointError(
            f"{source}: motion modules have different numbers of transformer layers {counts}"
        )
    tables = [value for key, value in state_dict.items() if _OPTIONAL_KEY.search(key)]
    return MotionLayout(
        max_seq_length=int(tables[0].shape[1]) if tables else 32,
        transformer_layers=counts.pop(),
        double_self_attention="attn2" in attentions,
        has_mid_block="mid_block" in layers,
    )


def split_lora_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, dict[str, torch.Tensor]]]]:
    """Split a peft-wrapped state dict into base weights and ``{adapter: {module: {"A"|"B": weight}}}``."""
    base: dict[str, torch.Tensor] = {}
    adapters: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for key, value in state_dict.items():
        match = _LORA_KEY.match(key)
        if match:
            modules = adapters.setdefault(match["adapter"], {})
            modules.setdefault(match["module"], {})[match["part"]] = value
        else:
            base[key.replace(".base_layer.", ".")] = value
    return base, adapters


def read_sd_unet_config(pretrained_model_path: str | Path) -> dict[str, Any]:
    """The ``unet/config.json`` of an SD1.5 diffusers folder, checked for options we cannot honour."""
    path = Path(pretrained_model_path, "unet", "config.json")
    if not path.is_file():
        raise FileNotFoundError(f"SD1.5 UNet config not found: {path}")
    config = json.loads(path.read_text())
    for option, supported in _UNSUPPORTED_SD_OPTIONS.items():
        if config.get(option, supported) != supported:
            raise CheckpointError(
                f"{path}: {option}={config[option]!r} is not supported (only {supported!r})"
            )
    if config.get("norm_num_groups", 32) != OFFICIAL_MOTION_NORM_GROUPS:
        raise CheckpointError(
            f"{path}: norm_num_groups={config['norm_num_groups']} differs from the released motion modules' "
            f"{OFFICIAL_MOTION_NORM_GROUPS} groups, which diffusers cannot express separately"
        )
    return config


def _per_block(value: Any, count: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def _block_types(types: Iterable[str], source: str) -> list[str]:
    try:
        return [_BLOCK_TYPES[name] for name in types]
    except KeyError as error:
        raise CheckpointError(f"{source}: unsupported block type {error.args[0]!r}") from None


def _spatial_heads(sd_config: Mapping[str, Any]) -> list[int]:
    # SD1.5's `attention_head_dim` is, for historical reasons, the number of heads (8 means 8 heads).
    count = len(sd_config["down_block_types"])
    return [int(value) for value in _per_block(sd_config.get("attention_head_dim", 8), count)]


def unet_config(sd_config: Mapping[str, Any], layout: MotionLayout) -> dict[str, Any]:
    """``ImageConductorUNetModel`` config from the SD1.5 UNet config and the motion layout."""
    if not layout.double_self_attention:
        raise CheckpointError("UNet motion modules must have two temporal self-attentions per block")
    return {
        "sample_size": sd_config.get("sample_size"),
        "in_channels": sd_config.get("in_channels", 4),
        "out_channels": sd_config.get("out_channels", 4),
        "down_block_types": _block_types(sd_config["down_block_types"], "UNet"),
        "up_block_types": _block_types(sd_config["up_block_types"], "UNet"),
        "block_out_channels": list(sd_config["block_out_channels"]),
        "layers_per_block": sd_config.get("layers_per_block", 2),
        "downsample_padding": sd_config.get("downsample_padding", 1),
        "mid_block_scale_factor": sd_config.get("mid_block_scale_factor", 1),
        "act_fn": sd_config.get("act_fn", "silu"),
        "norm_num_groups": sd_config.get("norm_num_groups", 32),
        "norm_eps": sd_config.get("norm_eps", 1e-5),
        "cross_attention_dim": sd_config.get("cross_attention_dim", 768),
        "transformer_layers_per_block": sd_config.get("transformer_layers_per_block", 1),
        "use_linear_projection": sd_config.get("use_linear_projection", False),
        "num_attention_heads": _spatial_heads(sd_config),
        "motion_max_seq_length": layout.max_seq_length,
        "motion_num_attention_heads": OFFICIAL_MOTION_HEADS,
        "use_motion_mid_block": layout.has_mid_block,
        "temporal_transformer_layers_per_block": layout.transformer_layers,
        "temporal_transformer_layers_per_mid_block": layout.transformer_layers,
    }


def controlnet_config(
    sd_config: Mapping[str, Any],
    layout: MotionLayout,
    conditioning_channels: int,
    concat_conditioning_mask: bool,
) -> dict[str, Any]:
    """``ImageConductorControlNetModel`` config, built from the UNet's like the released ``from_unet``."""
    if layout.double_self_attention or layout.has_mid_block:
        raise CheckpointError(
            "ControlNet motion modules must have one temporal self-attention and no mid block"
        )
    down_types = _block_types(sd_config["down_block_types"], "ControlNet")
    heads = _spatial_heads(sd_config)
    # diffusers gives the mid block the last down block's head count; the released mid block has 8.
    if down_types[-1] == "CrossAttnDownBlockMotion" and heads[-1] != OFFICIAL_CONTROLNET_MID_HEADS:
        raise CheckpointError("a cross-attention last down block with other than 8 heads is not supported")
    heads[-1] = OFFICIAL_CONTROLNET_MID_HEADS
    return {
        "in_channels": sd_config.get("in_channels", 4),
        "conditioning_channels": conditioning_channels,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": down_types,
        "block_out_channels": list(sd_config["block_out_channels"]),
        "layers_per_block": sd_config.get("layers_per_block", 2),
        "downsample_padding": sd_config.get("downsample_padding", 1),
        "mid_block_scale_factor": sd_config.get("mid_block_scale_factor", 1),
        "act_fn": sd_config.get("act_fn", "silu"),
        "norm_num_groups": sd_config.get("norm_num_groups", 32),
        "norm_eps": sd_config.get("norm_eps", 1e-5),
        "cross_attention_dim": sd_config.get("cross_attention_dim", 768),
        "transformer_layers_per_block": sd_config.get("transformer_layers_per_block", 1),
        "temporal_transformer_layers_per_block": layout.transformer_layers,
        "attention_head_dim": heads,
        "num_attention_heads": heads,
        "use_linear_projection": sd_config.get("use_linear_projection", False),
        "upcast_attention": sd_config.get("upcast_attention", False),
        "motion_max_seq_length": layout.max_seq_length,
        "motion_num_attention_heads": OFFICIAL_MOTION_HEADS,
        "concat_conditioning_mask": concat_conditioning_mask,
        "use_simplified_condition_embedding": True,
    }


def _read_sd_unet_weights(pretrained_model_path: str | Path) -> dict[str, torch.Tensor]:
    folder = Path(pretrained_model_path, "unet")
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        if (folder / name).is_file():
            return read_checkpoint(folder / name)
    return {}


def _build_model(
    model_class: type[nn.Module],
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    dtype: torch.dtype,
    what: str,
) -> nn.Module:
    """Instantiate ``model_class`` without initialising weights and load ``state_dict`` (strict, clear errors)."""

    with init_empty_weights():
        model = model_class.from_config(dict(config))
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict and not _OPTIONAL_KEY.search(key)]
    unexpected = [key for key in state_dict if key not in expected]
    if missing or unexpected:
        raise CheckpointKeyError(what, missing, unexpected)
    mismatched = [
        f"{key}: file {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state_dict.items()
        if tuple(value.shape) != tuple(expected[key].shape)
    ]
    if mismatched:
        raise CheckpointError(f"{what}: {len(mismatched)} shape mismatch(es): " + "; ".join(mismatched[:10]))
    model.load_state_dict(
        {key: value.to(dtype) for key, value in state_dict.items()}, strict=False, assign=True
    )
    _cast_in_place(model, dtype)
    return model.eval()


def _cast_in_place(model: nn.Module, dtype: torch.dtype) -> None:
    # nn.Module.to, not ModelMixin.to: the latter warns about fp32-pinned modules, which these models lack.
    nn.Module.to(model, dtype)


def load_official_unet(
    pretrained_model_path: str | Path, unet_path: str | Path, torch_dtype: torch.dtype = torch.float32
) -> ImageConductorUNetModel:
    """The video UNet: SD1.5 weights from the folder, overridden by ``unet_path`` (SD layers + motion)."""
    sd_config = read_sd_unet_config(pretrained_model_path)
    released = convert_state_dict(read_checkpoint(unet_path), source=str(unet_path))
    layout = motion_layout(released, source=str(unet_path))
    weights = {**_read_sd_unet_weights(pretrained_model_path), **released}
    return _build_model(
        ImageConductorUNetModel, unet_config(sd_config, layout), weights, torch_dtype, f"UNet ({unet_path})"
    )


def _condition_in_channels(state_dict: Mapping[str, torch.Tensor], source: str) -> int:
    weight = state_dict.get("controlnet_cond_embedding.weight")
    if weight is None or weight.ndim != 4:
        raise CheckpointError(
            f"{source}: expected the simplified condition embedding 'controlnet_cond_embedding.weight' "
            "(a single 3x3 convolution)"
        )
    return int(weight.shape[1])


def load_official_image_controlnet(
    pretrained_model_path: str | Path,
    image_controlnet_path: str | Path,
    torch_dtype: torch.dtype = torch.float32,
) -> ImageConductorControlNetModel:
    """The SparseCtrl-RGB image ControlNet (latents + mask channel, zeroed noisy input)."""
    sd_config = read_sd_unet_config(pretrained_model_path)
    source = str(image_controlnet_path)
    weights = convert_state_dict(read_checkpoint(image_controlnet_path), source=source)
    config = controlnet_config(
        sd_config,
        motion_layout(weights, source=source),
        conditioning_channels=_condition_in_channels(weights, source) - 1,
        concat_conditioning_mask=True,
    )
    return _build_model(
        ImageConductorControlNetModel, config, weights, torch_dtype, f"image ControlNet ({source})"
    )


def load_official_flow_controlnet(
    pretrained_model_path: str | Path,
    flow_controlnet_path: str | Path,
    torch_dtype: torch.dtype = torch.float32,
    lora_alpha: float | None = None,
    adapter_names: Mapping[str, str] = OFFICIAL_ADAPTER_NAMES,
) -> ImageConductorControlNetModel:
    """The flow (motion) ControlNet with its LoRA adapters ("camera", "object").

    Args:
        lora_alpha: LoRA alpha of every adapter; ``None`` = each module's rank (scale 1, the released value).
        adapter_names: released adapter name -> our name; unlisted adapters keep their name.
    """
    sd_config = read_sd_unet_config(pretrained_model_path)
    source = str(flow_controlnet_path)
    base, lora = split_lora_state_dict(read_checkpoint(flow_controlnet_path))
    weights = convert_state_dict(base, source=source)
    config = controlnet_config(
        sd_config,
        motion_layout(weights, source=source),
        conditioning_channels=_condition_in_channels(weights, source),
        concat_conditioning_mask=False,
    )
    model = _build_model(
        ImageConductorControlNetModel, config, weights, torch_dtype, f"flow ControlNet ({source})"
    )
    for released_name in sorted(lora, key=lambda name: adapter_names.get(name, name)):
        _add_released_adapter(
            model, adapter_names.get(released_name, released_name), lora[released_name], lora_alpha, source
        )
    _cast_in_place(model, torch_dtype)
    return model


def _add_released_adapter(
    model: ImageConductorControlNetModel,
    name: str,
    modules: Mapping[str, Mapping[str, torch.Tensor]],
    lora_alpha: float | None,
    source: str,
) -> None:
    what = f"flow ControlNet adapter {name!r} ({source})"
    halves = [
        f"{module}.lora_{part}" for module, parts in modules.items() for part in "AB" if part not in parts
    ]
    if halves:
        raise CheckpointKeyError(what, halves, [])
    renamed = {
        diffusers_key(f"{module}.weight")[: -len(".weight")]: parts for module, parts in modules.items()
    }
    known = dict(model.named_modules())
    unknown = [f"{module}.lora_A" for module in renamed if module not in known]
    if unknown:
        raise CheckpointKeyError(what, [], unknown)
    config = lora_config_for_modules(
        {module: int(parts["A"].shape[0]) for module, parts in renamed.items()}, lora_alpha
    )
    model.add_adapter(config, name)
    provided = {
        f"{module}.lora_{part}.{name}.weight": tensor
        for module, parts in renamed.items()
        for part, tensor in parts.items()
    }
    expected = {
        key: value
        for key, value in model.state_dict().items()
        if f".lora_A.{name}." in key or f".lora_B.{name}." in key
    }
    missing, unexpected = set(expected) - set(provided), set(provided) - set(expected)
    if missing or unexpected:
        raise CheckpointKeyError(what, missing, unexpected)
    mismatched = [key for key, value in provided.items() if tuple(value.shape) != tuple(expected[key].shape)]
    if mismatched:
        raise CheckpointError(f"{what}: LoRA shape mismatch for {mismatched[:10]}")
    model.load_state_dict(
        {key: value.to(expected[key].dtype) for key, value in provided.items()}, strict=False
    )
