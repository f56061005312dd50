"""Transformer feed-forward layers that run over at most a fixed number of tokens at a time.

A transformer block's feed-forward widens every token fourfold (eightfold before GEGLU's gating), and at
full latent resolution that intermediate is the largest tensor of a sampling step (16 frames of 256x384 at
SD1.5 widths: about 0.5 GB per layer in float32). Each token is transformed on its own, so running the
layer over slices of the batch bounds that memory without changing the result.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from torch import nn

from imageconductor.models.lora import per_row_adapters_active

__all__ = ["DEFAULT_FEED_FORWARD_TOKENS", "ChunkedFeedForward", "use_chunked_feed_forward"]

#: Tokens per feed-forward slice: small enough to bound the intermediate, large enough for fast matmuls.
DEFAULT_FEED_FORWARD_TOKENS = 16384


class ChunkedFeedForward(FeedForward):
    """diffusers' ``FeedForward`` evaluated over slices of the batch of about ``max_tokens`` tokens each.

    Same parameters and names as ``FeedForward`` (instances are switched in place). Layers running one LoRA
    adapter per batch row keep the whole batch together (their rows must stay in place).
    """

    max_tokens: int = DEFAULT_FEED_FORWARD_TOKENS

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        tokens_per_entry = max(hidden_states.shape[1:-1].numel(), 1)
        per_slice = max(self.max_tokens // tokens_per_entry, 1)
        if hidden_states.ndim < 2 or per_slice >= hidden_states.shape[0] or per_row_adapters_active(self):
            return super().forward(hidden_states, *args, **kwargs)
        parts = [super(ChunkedFeedForward, self).forward(part) for part in hidden_states.split(per_slice)]
        return torch.cat(parts)


def use_chunked_feed_forward(model: nn.Module, max_tokens: int = DEFAULT_FEED_FORWARD_TOKENS) -> int:
    """Switch every ``FeedForward`` in ``model`` to :class:`ChunkedFeedForward` with ``max_tokens`` tokens
    a slice, in place. Returns how many were switched."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    switched = 0
    for module in model.modules():
        if isinstance(module, FeedForward):
            module.__class__ = ChunkedFeedForward
            module.max_tokens = max_tokens
            switched += 1
    return switched
