"""The video UNet: diffusers' ``UNetMotionModel`` with per-frame motion-module GroupNorm."""

from __future__ import annotations

import functools

from diffusers import UNetMotionModel

from imageconductor.models.attention import use_shared_rows_attention
from imageconductor.models.feed_forward import use_chunked_feed_forward
from imageconductor.models.lora import AdapterSupportMixin
from imageconductor.models.motion_norm import use_per_frame_motion_norms


class ImageConductorUNetModel(AdapterSupportMixin, UNetMotionModel):
    """AnimateDiff-style UNet (SD1.5 layers + motion modules) as the released Image Conductor code runs it.

    Same configuration, parameters and forward as ``diffusers.UNetMotionModel``; only the GroupNorm of every
    motion module normalises each frame separately (see :mod:`imageconductor.models.motion_norm`). Two
    changes of how, not what, it computes: spatial self-attention computes identical batch entries once
    (:mod:`imageconductor.models.attention`) and feed-forward layers run in slices of the batch
    (:mod:`imageconductor.models.feed_forward`).
    ``forward`` expects ``encoder_hidden_states`` repeated per frame, ``(B*F, seq, dim)``, and additional
    ControlNet residuals shaped ``(B*F, C, h, w)``.
    """

    @functools.wraps(UNetMotionModel.__init__)
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        use_per_frame_motion_norms(self)
        use_shared_rows_attention(self)
        use_chunked_feed_forward(self)
