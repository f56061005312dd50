"""Spatial self-attention that computes batch entries with identical inputs once, and pads small heads.

In a guided sampling step the rows of the batch (negative / positive prompt, with or without trajectory
control) share the noisy latents and the conditions and differ only in text or adapter. Up to the first
cross-attention of each network their hidden states are therefore bit-identical, and the first spatial
self-attention - at full latent resolution, the most expensive operation of a step on a CPU - would be
computed once per row for the same result. :class:`SharedRowsAttnProcessor` finds identical batch entries
(a fingerprint proposes them, ``torch.equal`` confirms them), runs the attention on the distinct ones and
copies the results back.

On a CPU it also pads small attention heads (:func:`scaled_dot_product_attention`): PyTorch's CPU flash
kernel takes about 1.5 times longer for a head of 4 or 8 channels than for one of 16, so queries, keys
and values are padded with zero channels to 16 - the dot products and weights are unchanged, and the
padded output channels (zeros) are dropped. Elsewhere the output is exactly that of ``AttnProcessor2_0``;
padded, it agrees to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from imageconductor.models.lora import per_row_adapters_active

__all__ = [
    "MIN_PADDED_TOKENS",
    "PADDED_HEAD_DIM",
    "SharedRowsAttnProcessor",
    "distinct_entries",
    "head_padding",
    "scaled_dot_product_attention",
    "use_shared_rows_attention",
]

#: On a CPU, attention heads narrower than this are padded with zero channels to it ...
PADDED_HEAD_DIM = 16
#: ... when queries and keys both have at least this many tokens (shorter ones gain nothing).
MIN_PADDED_TOKENS = 128
_PADDED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Values in one padded query (or key) copy: about 4 MiB in float32.
_PADDED_VALUES_PER_CALL = 2**20


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


def head_padding(query: torch.Tensor, key: torch.Tensor) -> int:
    """Zero channels :func:`scaled_dot_product_attention` adds to each head of ``query`` / ``key``
    ``(..., tokens, head_dim)``: up to `PADDED_HEAD_DIM` on a CPU, in float32 / bfloat16 / float16, when
    both have at least `MIN_PADDED_TOKENS` tokens; otherwise 0."""
    head_dim = query.shape[-1]
    if query.device.type != "cpu" or query.dtype not in _PADDED_DTYPES or head_dim >= PADDED_HEAD_DIM:
        return 0
    if min(query.shape[-2], key.shape[-2]) < MIN_PADDED_TOKENS:
        return 0
    return PADDED_HEAD_DIM - head_dim


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``F.scaled_dot_product_attention(query, key, value)`` (no mask, scale ``head_dim ** -0.5``), with
    small heads padded with zero channels where that runs faster (:func:`head_padding`).

    Zero channels add nothing to the query-key products and give zero output channels, which are dropped:
    the result is the unpadded one up to float rounding. The padded copies are made for a few entries of
    the first (batch) dimension at a time, so they add little to the peak memory.
    """
    padding = head_padding(query, key)
    if not padding or query.ndim < 3:
        return F.scaled_dot_product_attention(query, key, value)
    head_dim, value_dim = query.shape[-1], value.shape[-1]
    value_padding = max(PADDED_HEAD_DIM - value_dim, 0)
    output = query.new_empty((*query.shape[:-1], value_dim))
    per_entry = max(query[0].numel(), key[0].numel()) // head_dim * PADDED_HEAD_DIM
    entries = max(_PADDED_VALUES_PER_CALL // per_entry, 1)
    for start in range(0, query.shape[0], entries):
        part = slice(start, start + entries)
        padded = F.scaled_dot_product_attention(
            F.pad(query[part], (0, padding)),
            F.pad(key[part], (0, padding)),
            F.pad(value[part], (0, value_padding)),
            scale=head_dim**-0.5,
        )
        output[part] = padded[..., :value_dim]
    return output


def _is_plain_self_attention(
    attn: Attention,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    temb: torch.Tensor | None,
) -> bool:
    """Whether a call is a self-attention over ``(batch, tokens, channels)`` without mask or norms."""
    extras = (
        encoder_hidden_states,
        attention_mask,
        temb,
        attn.spatial_norm,
        attn.group_norm,
        attn.norm_q,
        attn.norm_k,
    )
    return hidden_states.ndim == 3 and all(extra is None for extra in extras)


def _self_attention(attn: Attention, hidden_states: torch.Tensor) -> torch.Tensor:
    """What ``AttnProcessor2_0`` computes for a plain self-attention, through
    :func:`scaled_dot_product_attention`."""
    batch = hidden_states.shape[0]
    query = attn.to_q(hidden_states)
    key = attn.to_k(hidden_states)
    value = attn.to_v(hidden_states)
    head_dim = key.shape[-1] // attn.heads

    def heads(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

    output = scaled_dot_product_attention(heads(query), heads(key), heads(value))
    output = output.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
    output = attn.to_out[1](attn.to_out[0](output))
    if attn.residual_connection:
        output = output + hidden_states
    return output / attn.rescale_output_factor


class SharedRowsAttnProcessor(AttnProcessor2_0):
    """``AttnProcessor2_0`` (PyTorch SDPA) that computes identical batch entries of a self-attention once
    and pads small heads on a CPU (:func:`scaled_dot_product_attention`).

    Cross-attention, masked attention and layers with spatial or group norms take diffusers' path; layers
    running per-row LoRA adapters (whose rows must keep their batch positions) compute every entry.
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
        if not _is_plain_self_attention(attn, hidden_states, encoder_hidden_states, attention_mask, temb):
            return super().__call__(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )
        groups = None if per_row_adapters_active(attn) else distinct_entries(hidden_states)
        if groups is None:
            return _self_attention(attn, hidden_states)
        first, inverse = groups
        return _self_attention(attn, hidden_states.index_select(0, first)).index_select(0, inverse)


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
