"""Fresh LoRA adapters for training, on the modules the released adapters wrap.

The released ``omcm_weights`` / ``cmcm_weights`` adapters wrap these module names (the ``lora_A`` keys of the
released ``flow_controlnet.ckpt``): ``to_q, to_k, to_v, to_out.0, conv, proj, proj_in, proj_out,
time_emb_proj, linear_1, linear_2, ff.net.2, conv_shortcut, controlnet_cond_embedding, conv_in, conv1, conv2,
controlnet_mid_block, controlnet_down_blocks.<i>`` — every linear/conv layer of the ControlNet. New adapters
use the same targets, ``r = alpha`` (scale 1) and peft's Gaussian init (``B = 0``, so a fresh adapter starts
as the identity change).
"""

from __future__ import annotations

import re
import warnings

from torch import nn

from imageconductor.models.lora import adapter_names, lora_config_for_modules

#: Final name components of the modules the released LoRA adapters wrap.
RELEASED_TARGET_SUFFIXES = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "conv",
    "proj",
    "proj_in",
    "proj_out",
    "time_emb_proj",
    "linear_1",
    "linear_2",
    "ff.net.2",
    "conv_shortcut",
    "controlnet_cond_embedding",
    "conv_in",
    "conv1",
    "conv2",
    "controlnet_mid_block",
)
_DOWN_BLOCK = re.compile(r"(^|\.)controlnet_down_blocks\.\d+$")


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full names of the linear / conv modules of ``model`` that the released adapters wrap."""
    targets = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear | nn.Conv2d | nn.Conv3d) or ".lora_" in name:
            continue
        # a module that already carries an adapter is found through its wrapped `base_layer`
        name = name.removesuffix(".base_layer")
        if _DOWN_BLOCK.search(name) or any(
            name == s or name.endswith("." + s) for s in RELEASED_TARGET_SUFFIXES
        ):
            targets.append(name)
    return targets


def add_training_adapter(model: nn.Module, adapter_name: str, rank: int, alpha: float | None = None) -> int:
    """Add a freshly initialised LoRA adapter ``adapter_name`` to ``model``; return how many modules it wraps.

    Raises ``ValueError`` if the model already carries an adapter of that name.
    """
    if adapter_name in adapter_names(model):
        raise ValueError(f"{type(model).__name__} already has a LoRA adapter named {adapter_name!r}")
    targets = lora_target_modules(model)
    if not targets:
        raise ValueError(f"{type(model).__name__} has no module the LoRA adapters target")
    config = lora_config_for_modules(dict.fromkeys(targets, rank), alpha)
    config.init_lora_weights = "gaussian"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        model.add_adapter(config, adapter_name)
    return len(targets)
