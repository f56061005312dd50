"""The SparseCtrl-style ControlNets: the image (SparseCtrl-RGB) net and the flow (motion) net."""

from __future__ import annotations

import functools
from typing import Any

import torch
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.controlnets.controlnet_sparsectrl import SparseControlNetModel

from imageconductor.conditioning import pixel_unshuffle_video
from imageconductor.models.attention import use_shared_rows_attention
from imageconductor.models.feed_forward import use_chunked_feed_forward
from imageconductor.models.lora import AdapterSupportMixin
from imageconductor.models.motion_norm import use_per_frame_motion_norms


class ImageConductorControlNetModel(AdapterSupportMixin, SparseControlNetModel, PeftAdapterMixin):
    """diffusers' ``SparseControlNetModel`` as the released Image Conductor ControlNets run it.

    Differences from the parent class:

    * motion-module GroupNorms normalise each frame separately (the released behaviour);
    * spatial self-attention computes identical batch entries once (frames 1.. of the image condition are
      alike, and so are the guidance rows up to the first cross-attention) and feed-forward layers run in
      slices of the batch: the same results with less time and memory;
    * peft adapters are supported (``add_adapter``, ``load_lora_adapter``, ``set_adapter``, ...), saved
      next to the model by ``save_pretrained`` and restored by ``from_pretrained``;
    * a condition at a multiple ``r`` of the latent resolution (the flow net's pixel-resolution flow) is
      pixel-unshuffled by ``r`` first, giving ``channels * r * r`` channels at latent resolution.

    Like the parent, the noisy ``sample`` is replaced by zeros: the output depends only on the timestep,
    ``encoder_hidden_states`` (``(B*F, seq, dim)``) and the condition. Returns ``B*F``-row residuals.
    """

    @functools.wraps(SparseControlNetModel.__init__)
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        use_per_frame_motion_norms(self)
        use_shared_rows_attention(self)
        use_chunked_feed_forward(self)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        controlnet_cond: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ):
        controlnet_cond = self.fold_condition(controlnet_cond, latent_size=tuple(sample.shape[-2:]))
        return super().forward(sample, timestep, encoder_hidden_states, controlnet_cond, *args, **kwargs)

    def fold_condition(self, condition: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
        """Bring ``condition`` ``(B, C, F, H, W)`` to the latent size ``(h, w)`` by pixel-unshuffling."""
        height, width = condition.shape[-2:]
        latent_height, latent_width = latent_size
        if (height, width) == (latent_height, latent_width):
            return condition
        factor = height // latent_height
        expected = self.config.conditioning_channels
        if (
            height != factor * latent_height
            or width != factor * latent_width
            or condition.shape[1] * factor * factor != expected
        ):
            raise ValueError(
                f"condition of shape {tuple(condition.shape)} does not fit latents of size {latent_size}: "
                f"expected (B, {expected}, F, {latent_height}, {latent_width}) or a pixel-resolution condition "
                f"whose pixel-unshuffle gives {expected} channels"
            )
        return pixel_unshuffle_video(condition, factor)
