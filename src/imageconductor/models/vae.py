"""The VAE's downsampling factor: how many pixels one latent cell covers along each side."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["vae_scale_factor"]


def vae_scale_factor(block_out_channels: Sequence[int]) -> int:
    """``2 ** (levels - 1)`` for a diffusers ``AutoencoderKL`` with these ``block_out_channels``: 8 for SD's
    four levels, 4 for three."""
    if len(block_out_channels) < 1:
        raise ValueError("a VAE needs at least one level of block_out_channels")
    return 2 ** (len(block_out_channels) - 1)
