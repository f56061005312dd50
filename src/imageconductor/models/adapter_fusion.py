"""LoRA adapters folded into their base layers' weights for the length of a sampling run.

A peft LoRA layer computes ``base(x) + s · B(A(x))`` on every call: two more matmuls (or convolutions)
per layer on every row. Inside :func:`adapter_fusion`, a network called with one adapter choice for all
its rows (:func:`imageconductor.models.lora.adapters_weighted`) runs on the weights ``W + Σ s · B A``
instead, built once per choice and kept until the context ends. The original weight tensors are put
back as they were (swapped, not subtracted), so nothing drifts between calls.

Folding applies only where it cannot change what is trained or saved: without gradients, in eval mode,
on peft LoRA layers over ``nn.Linear`` / ``nn.Conv2d`` without DoRA, LoRA bias or other variants (any
other layer keeps running its adapter the usual way). It costs one more copy of the adapted layers'
weights per adapter choice while the context is open, so it pays only where the adapters are a large
share of the work: :func:`adapter_share` and :data:`FOLD_MIN_ADAPTER_SHARE` say where.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from peft.tuners.lora.layer import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

__all__ = [
    "FOLD_MIN_ADAPTER_SHARE",
    "adapter_fusion",
    "adapter_share",
    "fused_adapter_weights",
    "fusion_active",
]

#: Adapter parameters per adapted weight from which folding pays for its copy. Measured: the official-tiny
#: fixture (0.20: rank 8 on 32-64 channels) samples 6-13 % faster folded; the released model (0.08: rank
#: 64 on 320-1280 channels) no faster in bfloat16 on CPU (17.1 s a step against 16.8 s), for 0.9 GiB more.
FOLD_MIN_ADAPTER_SHARE = 0.15
#: Attribute of a model holding its folded weights while :func:`adapter_fusion` is open.
_CACHE_ATTRIBUTE = "_imageconductor_fused_weights"

_FoldedLayers = list[tuple[nn.Module, nn.Parameter]]


@contextmanager
def adapter_fusion(model: nn.Module) -> Iterator[None]:
    """Let single-choice adapter calls of ``model`` run on folded weights until the context ends.

    The folded weights are built on first use of each adapter choice and dropped on exit; the adapters
    must not change inside the context.
    """
    previous = getattr(model, _CACHE_ATTRIBUTE, None)
    object.__setattr__(model, _CACHE_ATTRIBUTE, {} if previous is None else previous)
    try:
        yield
    finally:
        object.__setattr__(model, _CACHE_ATTRIBUTE, previous)


def fusion_active(model: nn.Module) -> bool:
    """Whether a call of ``model`` now would run on folded weights (inside :func:`adapter_fusion`, no
    gradients, eval mode)."""
    return (
        getattr(model, _CACHE_ATTRIBUTE, None) is not None
        and not torch.is_grad_enabled()
        and not model.training
    )


def adapter_share(model: nn.Module) -> float:
    """Parameters of ``model``'s largest LoRA adapter per weight of the layers it adapts (0 without
    adapters): about the share of an adapted layer's work that its LoRA layers add."""
    adapter_params: dict[str, int] = {}
    adapted: dict[str, int] = {}
    for layer in model.modules():
        if not isinstance(layer, LoraLayer):
            continue
        for name in layer.lora_A:
            adapter_params[name] = adapter_params.get(name, 0) + sum(
                module.weight.numel() for module in (layer.lora_A[name], layer.lora_B[name])
            )
            adapted[name] = adapted.get(name, 0) + layer.get_base_layer().weight.numel()
    shares = [adapter_params[name] / adapted[name] for name in adapter_params if adapted[name]]
    return max(shares, default=0.0)


def _foldable(layer: BaseTunerLayer, names: Sequence[str]) -> bool:
    if not isinstance(layer, LoraLayer) or layer.merged:
        return False
    if not isinstance(layer.get_base_layer(), nn.Linear | nn.Conv2d):
        return False
    variants = getattr(layer, "lora_variant", {})
    return not any(
        layer.use_dora.get(name, False)
        or getattr(layer, "lora_bias", {}).get(name, False)
        or name in variants
        for name in names
    )


def _fold(layers: Sequence[BaseTunerLayer], names: Sequence[str]) -> _FoldedLayers:
    """``(layer, W + Σ delta)`` for every foldable layer that holds one of ``names``, at the layers'
    current scales (a layer holding none of them computes its base layer alone anyway)."""
    folded: _FoldedLayers = []
    for layer in layers:
        if not _foldable(layer, names) or not any(name in layer.lora_A for name in names):
            continue
        base = layer.get_base_layer()
        weight = base.weight.detach().clone()
        for name in names:
            if name in layer.lora_A:
                weight += layer.get_delta_weight(name).to(weight.dtype)
        folded.append((layer, nn.Parameter(weight, requires_grad=False)))
    return folded


@contextmanager
def fused_adapter_weights(
    model: nn.Module, layers: Sequence[BaseTunerLayer], weights: Mapping[str, float]
) -> Iterator[None]:
    """Run ``layers`` (all of ``model``'s, with ``weights`` already active at those scales) on folded
    weights when :func:`fusion_active`; otherwise, or for ``{}`` (no LoRA), leave them as they are."""
    if not weights or not fusion_active(model):
        yield
        return
    cache: dict[tuple, _FoldedLayers] = getattr(model, _CACHE_ATTRIBUTE)
    key = tuple(sorted((name, float(scale)) for name, scale in weights.items()))
    if key not in cache:
        cache[key] = _fold(layers, list(weights))
    originals = []
    try:
        for layer, folded_weight in cache[key]:
            base = layer.get_base_layer()
            originals.append((layer, base._parameters["weight"]))
            base._parameters["weight"] = folded_weight
            layer.enable_adapters(False)
        yield
    finally:
        for layer, original in originals:
            layer.get_base_layer()._parameters["weight"] = original
            layer.enable_adapters(True)
