"""Spatial self-attention that computes batch entries with identical inputs once.

In a guided sampling step the rows of the batch (negative / positive prompt, with or without trajectory
control) share the noisy latents and the conditions and differ only in text or adapter. Up to the first
cross-attention of each network their hidden states are therefore bit-identical, and the first spatial
self-attention - at full latent resolution, the most expensive operation of a step on a CPU - would be
computed once per row for the same result. :class:`SharedRowsAttnProcessor` finds identical batch entries
(a fingerprint proposes them, ``torch.equal`` confirms them), runs diffusers' SDPA attention on the distinct
ones and copies the results back: the output is exactly that of ``AttnProcessor2_0``.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from imageconductor.models.lora import per_row_adapters_active

__all__ = ["SharedRowsAttnProcessor", "distinct_entries", "use_shared_rows_attention"]


def distinct_entries(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Group the batch entries of ``tensor`` (dim 0) that are exactly equal.

    Returns ``(first, inverse)``, the index of the first entry of each group and each entry's group, so
    that ``tensor[first][inverse]`` equals ``tensor``; ``None`` when every entry is distinct.
    """
    batch = tensor.shape[0]
    if batch < 2:
        return None
    flat = tensor.reshape(batch, -1)
    # A fingerprint per entry: equal entries give (nearly) equal values, which only proposes candidates;
    # torch.equal decides. A fixed, irregular probe makes accidental matches of distinct entries rare.
    probe = torch.linspace(1.0, 2.0, flat.shape[1], dtype=torch.float32, device=tensor.device)
    probe = probe.sin().add_(1.5).to(flat.dtype)
    prints = (flat @ probe).float().tolist()
    first: list[int] = []
    inverse: list[int] = []
    for entry, value in enumerate(prints):
        for group, candidate in enumerate(first):
            close = abs(prints[candidate] - value) <= 1e-5 * (abs(value) + 1.0)
            if close and torch.equal(flat[candidate], flat[entry]):
                inverse.append(group)
                break
        else:
            inverse.append(len(first))
            first.append(entry)
    if len(first) == batch:
        return None
    device = tensor.device
    return torch.tensor(first, device=device), torch.tensor(inverse, device=device)


class SharedRowsAttnProcessor(AttnProcessor2_0):
    """``AttnProcessor2_0`` (PyTorch SDPA) that computes identical batch entries of a self-attention once.

    Cross-attention, masked attention and layers running per-row LoRA adapters (whose rows must keep their
    batch positions) take the plain path.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        plain = encoder_hidden_states is not None or attention_mask is not None or temb is not None
        groups = None if plain or per_row_adapters_active(attn) else distinct_entries(hidden_states)
        if groups is None:
            return super().__call__(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )
        first, inverse = groups
        distinct = super().__call__(
            attn, hidden_states.index_select(0, first), None, None, None, *args, **kwargs
        )
        return distinct.index_select(0, inverse)


def use_shared_rows_attention(model: nn.Module) -> int:
    """Give the self-attention of every spatial transformer block in ``model`` a
    :class:`SharedRowsAttnProcessor` (motion modules and cross-attention keep theirs). Returns the count."""
    processor = SharedRowsAttnProcessor()
    switched = 0
    for transformer in model.modules():
        if not isinstance(transformer, Transformer2DModel):
            continue
        for block in transformer.modules():
            if isinstance(block, BasicTransformerBlock) and isinstance(block.attn1, Attention):
                block.attn1.set_processor(processor)
                switched += 1
    return switched
