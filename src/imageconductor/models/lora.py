"""peft LoRA adapters on our diffusers models: call fixes, adapter selection, per-row adapters, saving.

* diffusers' motion modules call ``proj_in(input=...)`` / ``proj_out(input=...)``; peft's LoRA layers take
  their input as the positional ``x``. A permanent forward pre-hook on every LoRA layer moves ``input``
  to the positional slot.
* The same hook implements per-row adapter selection: while :func:`adapters_per_row` is active it hands
  peft's mixed-batch mechanism (``adapter_names=``) one adapter name per input row. A model's batch rows
  become ``B*F`` rows (convolutions, spatial attention) or ``B*H*W`` rows (temporal attention) inside the
  network, always batch-major, so each name is repeated ``rows // B`` times.
* peft's ``set_adapter`` marks every activated adapter as trainable; the selection context managers
  restore the previous ``requires_grad`` flags, active adapters and scales on exit.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers.utils import logging as diffusers_logging
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from imageconductor.models.adapter_fusion import fused_adapter_weights

#: Row label meaning "no LoRA" in peft's mixed-batch mechanism.
BASE_ADAPTER = "__base__"
#: Sub-folder of a saved model that holds one folder of LoRA weights per adapter.
ADAPTERS_SUBFOLDER = "adapters"
#: File name diffusers' ``save_lora_adapter`` writes (safetensors, with the LoraConfig in its metadata).
ADAPTER_WEIGHT_NAME = "pytorch_lora_weights.safetensors"

_SEVERAL_ADAPTERS_WARNING = "Already found a `peft_config` attribute"
_LORA_PARAM_SEGMENT = re.compile(r"\.lora_(?:A|B|embedding_A|embedding_B|magnitude_vector)\.")


class _RowAdapterState:
    """Per-model state read by the LoRA pre-hooks: the adapter name of each batch row, if any."""

    def __init__(self) -> None:
        self.names: list[str] | None = None
        self._expanded: dict[int, list[str]] = {}

    def set(self, names: Sequence[str] | None) -> None:
        self.names = list(names) if names is not None else None
        self._expanded = {}

    def expand(self, rows: int) -> list[str]:
        """Adapter names for a layer input with ``rows`` rows (batch-major multiples of the batch)."""
        expanded = self._expanded.get(rows)
        if expanded is None:
            names = self.names or []
            if not names or rows % len(names) != 0:
                raise RuntimeError(
                    f"per-row adapters: a LoRA layer received {rows} rows, not a multiple of the batch size "
                    f"{len(names)}"
                )
            repeat = rows // len(names)
            expanded = [name for name in names for _ in range(repeat)]
            self._expanded[rows] = expanded
        return expanded


def _row_state(model: nn.Module) -> _RowAdapterState:
    state = getattr(model, "_imageconductor_row_adapters", None)
    if state is None:
        state = _RowAdapterState()
        model._imageconductor_row_adapters = state
    return state


def _lora_pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Move ``input=`` to the positional slot; add ``adapter_names`` while per-row adapters are active.

    The row state is read from the layer (not captured), so copies of a model (``copy.deepcopy``) use
    their own state.
    """
    changed = False
    if not args and "input" in kwargs:
        kwargs = dict(kwargs)
        args = (kwargs.pop("input"),)
        changed = True
    state = getattr(module, "_imageconductor_hook_state", None)
    if state is not None and state.names is not None and args:
        if not changed:
            kwargs = dict(kwargs)
        kwargs["adapter_names"] = state.expand(args[0].shape[0])
        changed = True
    return (args, kwargs) if changed else None


def per_row_adapters_active(module: nn.Module) -> bool:
    """Whether a LoRA layer inside ``module`` currently runs one adapter per batch row
    (:func:`adapters_per_row`): its input rows must then keep their batch positions."""
    for layer in module.modules():
        state = getattr(layer, "_imageconductor_hook_state", None)
        if state is not None and state.names is not None:
            return True
    return False


def tuner_layers(model: nn.Module) -> list[BaseTunerLayer]:
    """All peft adapter layers inside ``model``."""
    return [module for module in model.modules() if isinstance(module, BaseTunerLayer)]


def install_adapter_hooks(model: nn.Module) -> int:
    """Install the call-fix / per-row pre-hook on every LoRA layer of ``model`` that lacks it (idempotent).

    Returns the number of layers newly hooked.
    """
    state = _row_state(model)
    installed = 0
    for layer in tuner_layers(model):
        if not getattr(layer, "_imageconductor_hooked", False):
            layer.register_forward_pre_hook(_lora_pre_hook, with_kwargs=True)
            layer._imageconductor_hooked = True
            installed += 1
        layer._imageconductor_hook_state = state
    return installed


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters loaded into ``model`` (empty if none)."""
    if not getattr(model, "_hf_peft_config_loaded", False):
        return []
    return list(getattr(model, "peft_config", {}))


def _check_known(model: nn.Module, names: Sequence[str]) -> None:
    known = adapter_names(model)
    unknown = sorted({name for name in names if name != BASE_ADAPTER and name not in known})
    if unknown:
        raise ValueError(
            f"unknown LoRA adapter(s) {unknown} for {type(model).__name__}; loaded adapters: {known or 'none'}"
        )


@contextmanager
def _restoring_adapter_state(layers: Sequence[BaseTunerLayer]) -> Iterator[None]:
    saved = [(list(layer.active_adapters), dict(layer.scaling), layer.disable_adapters) for layer in layers]
    grads = [(param, param.requires_grad) for layer in layers for param in layer.parameters()]
    try:
        yield
    finally:
        for layer, (active, scaling, disabled) in zip(layers, saved, strict=True):
            layer.set_adapter(active)
            layer.scaling.update(scaling)
            layer.enable_adapters(not disabled)
        for param, requires_grad in grads:
            param.requires_grad_(requires_grad)


@contextmanager
def adapters_weighted(model: nn.Module, weights: Mapping[str, float]) -> Iterator[None]:
    """Run ``model`` with the given adapters active at the given scales (``{}`` = no LoRA at all).

    ``{"camera": 1.0}`` is the released code's ``set_adapter("cmcm_weights")``; several entries blend the
    adapters (their LoRA deltas are summed with these weights). Restores the previous adapter state,
    including ``requires_grad``, on exit. Inside :func:`~imageconductor.models.adapter_fusion.adapter_fusion`
    the adapters run folded into the weights.
    """
    layers = tuner_layers(model)
    names = [name for name in weights]
    _check_known(model, names)
    if not layers:
        yield
        return
    with _restoring_adapter_state(layers):
        for layer in layers:
            if not names:
                layer.enable_adapters(False)
                continue
            layer.enable_adapters(True)
            layer.set_adapter(names)
            for name in names:
                layer.set_scale(name, float(weights[name]))
        with fused_adapter_weights(model, layers, weights):  # folded only inside adapter_fusion
            yield


@contextmanager
def adapters_per_row(model: nn.Module, row_adapters: Sequence[str]) -> Iterator[None]:
    """Run ``model`` with one adapter per batch row (:data:`BASE_ADAPTER` = no LoRA), scale 1 each.

    Uses peft's mixed-batch mechanism; inside the network each name is repeated for the rows that a
    batch row becomes. Restores the previous adapter state on exit.
    """
    layers = tuner_layers(model)
    used = sorted({name for name in row_adapters if name != BASE_ADAPTER})
    _check_known(model, used)
    if not layers:
        yield
        return
    install_adapter_hooks(model)
    state = _row_state(model)
    with _restoring_adapter_state(layers):
        for layer in layers:
            layer.enable_adapters(True)
            if used:
                layer.set_adapter(used)
            for name in used:
                layer.set_scale(name, 1.0)
        state.set(row_adapters)
        try:
            yield
        finally:
            state.set(None)


def lora_config_for_modules(ranks: Mapping[str, int], lora_alpha: float | None = None) -> LoraConfig:
    """A LoraConfig targeting exactly the modules in ``ranks`` (full module paths) with their ranks.

    ``lora_alpha=None`` sets alpha equal to each module's rank (LoRA scale 1), as the released weights use.
    """
    if not ranks:
        raise ValueError("a LoRA adapter needs at least one target module")
    rank_counts: dict[int, int] = {}
    for rank in ranks.values():
        rank_counts[rank] = rank_counts.get(rank, 0) + 1
    default_rank = max(rank_counts, key=lambda rank: (rank_counts[rank], rank))
    odd = {name: rank for name, rank in ranks.items() if rank != default_rank}
    pattern = "^(?:" + "|".join(re.escape(name) for name in sorted(ranks)) + ")$"
    return LoraConfig(
        r=default_rank,
        lora_alpha=float(default_rank if lora_alpha is None else lora_alpha),
        target_modules=pattern,
        rank_pattern={f"^{re.escape(name)}$": rank for name, rank in odd.items()},
        alpha_pattern={f"^{re.escape(name)}$": float(rank) for name, rank in odd.items()}
        if lora_alpha is None
        else {},
        init_lora_weights=False,
        lora_dropout=0.0,
    )


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict without adapter weights and with peft's ``.base_layer`` removed from names."""
    base = {}
    for key, value in model.state_dict().items():
        if _LORA_PARAM_SEGMENT.search(key):
            continue
        base[key.replace(".base_layer.", ".")] = value
    return base


class AdapterSupportMixin:
    """Mixin for our diffusers models that carry peft adapters.

    * ``add_adapter`` / ``load_lora_adapter`` install the LoRA call-fix hooks.
    * ``save_pretrained`` writes the plain model (no peft names, loadable by the diffusers parent class) and
      one ``adapters/<name>/pytorch_lora_weights.safetensors`` per adapter (LoraConfig in its metadata);
      ``from_pretrained`` loads those adapters back under the same names.
    """

    def add_adapter(self, adapter_config: Any, adapter_name: str = "default") -> None:
        with warnings.catch_warnings():  # several adapters are the point of these models
            warnings.filterwarnings("ignore", message=_SEVERAL_ADAPTERS_WARNING)
            super().add_adapter(adapter_config, adapter_name)
        install_adapter_hooks(self)

    def load_lora_adapter(
        self, pretrained_model_name_or_path_or_dict: Any, prefix: str | None = None, **kwargs
    ):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_SEVERAL_ADAPTERS_WARNING)
            result = super().load_lora_adapter(pretrained_model_name_or_path_or_dict, prefix=prefix, **kwargs)
        install_adapter_hooks(self)
        return result

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        names = adapter_names(self)
        if not names:
            super().save_pretrained(save_directory, **kwargs)
            return

        with init_empty_weights():
            plain = type(self).from_config(self.config)
        plain.load_state_dict(base_state_dict(self), strict=True, assign=True)
        plain.save_pretrained(save_directory, **kwargs)
        # diffusers' save_lora_adapter calls `self.to(dtype=None)`, which logs a spurious fp32 warning.
        modeling_logger = diffusers_logging.get_logger("diffusers.models.modeling_utils")
        level = modeling_logger.level
        modeling_logger.setLevel(diffusers_logging.ERROR)
        try:
            for name in names:
                self.save_lora_adapter(Path(save_directory, ADAPTERS_SUBFOLDER, name), adapter_name=name)
        finally:
            modeling_logger.setLevel(level)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any):
        folder = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        adapters_dir = folder / ADAPTERS_SUBFOLDER
        if adapters_dir.is_dir():
            for adapter_dir in sorted(adapters_dir.iterdir()):
                if (adapter_dir / ADAPTER_WEIGHT_NAME).is_file():
                    model.load_lora_adapter(
                        str(adapter_dir),
                        weight_name=ADAPTER_WEIGHT_NAME,
                        adapter_name=adapter_dir.name,
                        prefix=None,
                    )
        return model
