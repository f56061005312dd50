"""One noise prediction of the whole model: image ControlNet + flow ControlNet (per-row LoRA) + UNet.

Both ControlNets ignore the noisy sample (they replace it by zeros), so their output depends only on the
timestep, the text embedding, the condition and - for the flow net - the adapter. Rows that agree on those
are computed once and their residuals shared; the UNet then runs once on the whole batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from contextlib import AbstractContextManager

import torch
from torch import nn

from imageconductor.models.adapter_fusion import fusion_active
from imageconductor.models.lora import BASE_ADAPTER, adapters_per_row, adapters_weighted

#: What a batch row asks of the flow ControlNet: an adapter name, "none", or adapter weights to blend.
AdapterSpec = str | Mapping[str, float] | None
_NO_ADAPTER = {"none", BASE_ADAPTER}
# A canonical adapter choice: an adapter name, BASE_ADAPTER, or sorted (name, weight) pairs of a blend.
_AdapterKey = str | tuple[tuple[str, float], ...]


def canonical_adapter(spec: AdapterSpec) -> _AdapterKey:
    """Normalise one row's adapter choice.

    ``"none"`` / ``"__base__"`` / ``None`` / ``{}`` -> no LoRA; ``"camera"`` -> that adapter at weight 1;
    ``{"camera": w1, "object": w2}`` -> a weighted blend (zero weights dropped, ``{"object": 1.0}`` ==
    ``"object"``).
    """
    if spec is None:
        return BASE_ADAPTER
    if isinstance(spec, str):
        return BASE_ADAPTER if spec.lower() in _NO_ADAPTER else spec
    if isinstance(spec, Mapping):
        items = []
        for name, weight in spec.items():
            if not isinstance(name, str):
                raise TypeError(f"adapter names must be strings, got {name!r}")
            weight = float(weight)
            if not math.isfinite(weight):
                raise ValueError(f"adapter weight for {name!r} must be finite, got {weight}")
            if weight != 0.0:
                items.append((name, weight))
        items.sort()
        if not items:
            return BASE_ADAPTER
        if len(items) == 1 and items[0][1] == 1.0:
            return items[0][0]
        return tuple(items)
    raise TypeError(
        f"an adapter choice must be a name, 'none' or a dict of weights; got {type(spec).__name__}"
    )


def _rows_equal(tensor: torch.Tensor, first: int, second: int) -> bool:
    a, b = tensor[first], tensor[second]
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True  # the same memory (e.g. an expanded batch): identical without looking
    return torch.equal(a, b)


def unique_rows(tensors: Sequence[torch.Tensor], labels: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """Group batch rows that have equal labels and equal rows in every tensor.

    Returns ``(representatives, group_of_row)``: the first row of each group, and each row's group index.
    """
    representatives: list[int] = []
    groups: list[int] = []
    for row, label in enumerate(labels):
        for group, rep in enumerate(representatives):
            if labels[rep] == label and all(_rows_equal(tensor, rep, row) for tensor in tensors):
                groups.append(group)
                break
        else:
            groups.append(len(representatives))
            representatives.append(row)
    return representatives, groups


def _batch_of(tensor: torch.Tensor, batch: int, name: str, ndim: int) -> torch.Tensor:
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(f"{name} has batch size {tensor.shape[0]}, expected {batch} (or 1)")


def _timesteps_per_row(
    timestep: torch.Tensor | float | int, batch: int, device: torch.device
) -> torch.Tensor:
    timesteps = torch.as_tensor(timestep, device=device)
    if timesteps.ndim == 0:
        timesteps = timesteps[None]
    if timesteps.ndim != 1 or timesteps.shape[0] not in (1, batch):
        raise ValueError(
            f"timestep must be a scalar or have shape (1,) or ({batch},); got {tuple(timesteps.shape)}"
        )
    return timesteps.expand(batch)


def _gather_rows(residual: torch.Tensor, index: list[int], frames: int) -> torch.Tensor:
    """Residuals of the computed rows ``(U*F, ...)`` -> residuals of the batch rows ``(len(index)*F, ...)``."""
    if index == list(range(residual.shape[0] // frames)):
        return residual
    per_row = residual.reshape(-1, frames, *residual.shape[1:])
    picked = per_row[torch.tensor(index, device=residual.device)]
    return picked.reshape(-1, *residual.shape[1:])


def _flow_scales_per_row(flow_scale: float | Sequence[float], batch: int) -> list[float]:
    if isinstance(flow_scale, numbers.Real):
        return [float(flow_scale)] * batch
    scales = [float(scale) for scale in flow_scale]
    if len(scales) != batch:
        raise ValueError(f"flow_scale has {len(scales)} entries for a batch of {batch} rows")
    return scales


def _with_zero_row(residual: torch.Tensor, frames: int) -> torch.Tensor:
    """Residuals ``(U*F, ...)`` with one more all-zero row of ``frames`` appended."""
    return torch.cat([residual, residual.new_zeros(frames, *residual.shape[1:])])


def _scale_rows(residual: torch.Tensor, scales: list[float]) -> torch.Tensor:
    """Multiply each batch row's residuals ``(B*F, ...)`` by its factor."""
    factors = torch.tensor(scales, dtype=residual.dtype, device=residual.device)
    per_row = residual.reshape(len(scales), -1, *residual.shape[1:])
    return (per_row * factors.view(-1, *([1] * (per_row.ndim - 1)))).reshape(residual.shape)


def _run_controlnet(
    controlnet: nn.Module,
    rows: list[int],
    sample: torch.Tensor,
    timesteps: torch.Tensor,
    text: torch.Tensor,
    condition: torch.Tensor,
    mask: torch.Tensor | None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    index = torch.tensor(rows, device=sample.device)
    frames = sample.shape[2]
    dtype = controlnet.dtype
    down, mid = controlnet(
        sample.index_select(0, index).to(dtype),
        timesteps.index_select(0, index),
        encoder_hidden_states=text.index_select(0, index).to(dtype).repeat_interleave(frames, dim=0),
        controlnet_cond=condition.index_select(0, index).to(dtype),
        conditioning_mask=None if mask is None else mask.index_select(0, index).to(dtype),
        conditioning_scale=1.0,
        return_dict=False,
    )
    return list(down), mid


def _adapter_context(flow_controlnet: nn.Module, keys: Sequence[_AdapterKey]) -> AbstractContextManager:
    distinct = set(keys)
    if len(distinct) == 1:
        key = keys[0]
        weights = {} if key == BASE_ADAPTER else {key: 1.0} if isinstance(key, str) else dict(key)
        return adapters_weighted(flow_controlnet, weights)
    if any(not isinstance(key, str) for key in distinct):
        raise ValueError("blended adapters must run in a call of their own")
    return adapters_per_row(flow_controlnet, list(keys))


def _flow_residuals(
    flow_controlnet: nn.Module,
    rows: list[int],
    keys: list[_AdapterKey],
    sample: torch.Tensor,
    timesteps: torch.Tensor,
    text: torch.Tensor,
    flow: torch.Tensor,
) -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
    """Flow-ControlNet residuals for ``rows``: single adapters share one call (per-row adapters), each
    distinct blend gets its own call; with the adapters folded into the weights (`fusion_active`) every
    distinct choice gets its own call, which then runs no LoRA layer at all. Returns residuals and the
    order of ``rows`` they come in."""
    separate = fusion_active(flow_controlnet)
    calls: list[list[int]] = []
    single = [position for position, key in enumerate(keys) if isinstance(key, str)]
    if single and not separate:
        calls.append(single)
    for choice in dict.fromkeys(key for key in keys if separate or not isinstance(key, str)):
        calls.append([position for position, key in enumerate(keys) if key == choice])
    downs: list[list[torch.Tensor]] = []
    mids: list[torch.Tensor] = []
    for positions in calls:
        with _adapter_context(flow_controlnet, [keys[position] for position in positions]):
            down, mid = _run_controlnet(
                flow_controlnet, [rows[p] for p in positions], sample, timesteps, text, flow, None
            )
        downs.append(down)
        mids.append(mid)
    order = [position for positions in calls for position in positions]
    if len(calls) == 1:
        return downs[0], mids[0], order
    down = [torch.cat(parts) for parts in zip(*downs, strict=True)]
    return down, torch.cat(mids), order


def predict_noise(
    unet: nn.Module,
    image_controlnet: nn.Module | None,
    flow_controlnet: nn.Module | None,
    sample: torch.Tensor,
    timestep: torch.Tensor | float | int,
    encoder_hidden_states: torch.Tensor,
    image_condition: torch.Tensor | None,
    flow_condition: torch.Tensor | None,
    adapters: Sequence[AdapterSpec] | AdapterSpec,
    flow_scale: float | Sequence[float] = 1.0,
) -> torch.Tensor:
    """Noise prediction of the Image Conductor model for a batch whose rows may differ in text and adapter.

    The released code's prediction: image-ControlNet residuals and flow-ControlNet residuals (conditioning
    scale 1) are added to the UNet's skip features and mid output. The UNet runs ONCE on the whole batch;
    ControlNet work is shared between rows with identical inputs (image net: timestep, text, image
    condition; flow net: the same plus flow condition and adapter), compared by identity or value.

    Args:
        unet: :class:`~imageconductor.models.unet.ImageConductorUNetModel`.
        image_controlnet: SparseCtrl-RGB :class:`~imageconductor.models.controlnets.ImageConductorControlNetModel`
            (``None`` = no image conditioning).
        flow_controlnet: flow ControlNet with adapters ``"camera"`` / ``"object"`` (``None`` = no flow).
        sample: noisy latents ``(B, 4, F, h, w)``.
        timestep: scalar, ``(1,)`` or ``(B,)``.
        encoder_hidden_states: text embeddings ``(B, 77, d)`` (or ``(1, 77, d)``, broadcast).
        image_condition: ``(B, 5, F, h, w)`` from :func:`imageconductor.conditioning.image_condition`.
        flow_condition: ``(B, 2, F, H, W)`` flow at pixel resolution (``(1, ...)`` broadcasts).
        adapters: one choice per batch row: ``"camera"``, ``"object"``, ``"none"`` (no LoRA), or weights to
            blend such as ``{"camera": 0.5, "object": 1.0}``; a single choice applies to every row.
        flow_scale: factor on the flow-ControlNet residuals (diffusers' ``controlnet_conditioning_scale``),
            one for all rows or one per row; ``0`` skips the flow ControlNet for that row: trajectory control
            off (rows at 0 cost the UNet only).

    Returns:
        ``eps`` of shape ``(B, 4, F, h, w)``.
    """
    if sample.ndim != 5:
        raise ValueError(f"sample must be (B, C, F, h, w), got shape {tuple(sample.shape)}")
    batch, _, frames = sample.shape[:3]
    if isinstance(adapters, (str, Mapping)) or adapters is None:
        adapters = [adapters] * batch
    adapter_keys = [canonical_adapter(spec) for spec in adapters]
    if len(adapter_keys) != batch:
        raise ValueError(f"adapters has {len(adapter_keys)} entries for a batch of {batch} rows")
    text = _batch_of(encoder_hidden_states, batch, "encoder_hidden_states", 3)
    timesteps = _timesteps_per_row(timestep, batch, sample.device)
    step_labels = [float(value) for value in timesteps.tolist()]

    down_residuals: list[torch.Tensor] | None = None
    mid_residual: torch.Tensor | None = None

    def accumulate(down: list[torch.Tensor], mid: torch.Tensor, index: list[int]) -> None:
        nonlocal down_residuals, mid_residual
        down = [_gather_rows(residual, index, frames) for residual in down]
        mid = _gather_rows(mid, index, frames)
        if down_residuals is None:
            down_residuals, mid_residual = down, mid
        else:
            down_residuals = [total + residual for total, residual in zip(down_residuals, down, strict=True)]
            mid_residual = mid_residual + mid

    if image_controlnet is not None and image_condition is not None:
        image = _batch_of(image_condition, batch, "image_condition", 5)
        rows, groups = unique_rows([text, image], step_labels)
        down, mid = _run_controlnet(
            image_controlnet, rows, sample, timesteps, text, image[:, :-1], image[:, -1:]
        )
        accumulate(down, mid, groups)

    scales = _flow_scales_per_row(flow_scale, batch)
    active = [row for row, scale in enumerate(scales) if scale != 0]
    if flow_controlnet is not None and flow_condition is not None and active:
        flow = _batch_of(flow_condition, batch, "flow_condition", 5)
        labels = [(step_labels[row], adapter_keys[row]) for row in active]
        compared = [text, flow]
        if len(active) < batch:
            picked = torch.tensor(active, device=sample.device)
            compared = [tensor.index_select(0, picked) for tensor in compared]
        representatives, groups = unique_rows(compared, labels)
        rows = [active[position] for position in representatives]
        down, mid, order = _flow_residuals(
            flow_controlnet, rows, [adapter_keys[row] for row in rows], sample, timesteps, text, flow
        )
        position_of = {group: position for position, group in enumerate(order)}
        index_of_active = dict(zip(active, (position_of[group] for group in groups), strict=True))
        if len(active) < batch:  # rows without flow read an extra all-zero residual
            down, mid = [_with_zero_row(residual, frames) for residual in down], _with_zero_row(mid, frames)
        index = [index_of_active.get(row, len(rows)) for row in range(batch)]
        down, mid = (
            [_gather_rows(residual, index, frames) for residual in down],
            _gather_rows(mid, index, frames),
        )
        if any(scale not in (0.0, 1.0) for scale in scales):  # rows at 0 already read zeros
            down, mid = [_scale_rows(residual, scales) for residual in down], _scale_rows(mid, scales)
        accumulate(down, mid, list(range(batch)))

    dtype = unet.dtype
    return unet(
        sample.to(dtype),
        timesteps,
        encoder_hidden_states=text.to(dtype).repeat_interleave(frames, dim=0),
        down_block_additional_residuals=down_residuals,
        mid_block_additional_residual=mid_residual,
        return_dict=False,
    )[0]
