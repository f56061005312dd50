"""Condition tensors for the two ControlNets.

* Image condition (SparseCtrl-RGB): the first frame's VAE latents at frame 0, zeros at the other frames, and
  one mask channel that is 1 at frame 0 and 0 elsewhere -> ``(B, 5, F, h, w)``.
* Flow condition: the ``(B, 2, F, H, W)`` trajectory flow at pixel resolution is folded to latent resolution
  with a pixel-unshuffle (``(B, 2*r*r, F, H/r, W/r)``, r = 8 for the released model); the flow ControlNet
  does this itself when handed a pixel-resolution condition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def image_condition(image_latents: torch.Tensor, num_frames: int, frame_index: int = 0) -> torch.Tensor:
    """Build the SparseCtrl-RGB condition from first-frame latents.

    Args:
        image_latents: ``(B, C, 1, h, w)`` (or ``(B, C, h, w)``) latents of the conditioning frame, already
            multiplied by the VAE scaling factor.
        num_frames: number of video frames ``F``.
        frame_index: the frame the latents belong to (0 = first frame, the released behaviour).

    Returns:
        ``(B, C + 1, F, h, w)``: latents at ``frame_index`` and zeros elsewhere, followed by a mask channel that
        is 1 at ``frame_index`` and 0 elsewhere. Same dtype and device as ``image_latents``.
    """
    if image_latents.ndim == 4:
        image_latents = image_latents.unsqueeze(2)
    if image_latents.ndim != 5 or image_latents.shape[2] != 1:
        raise ValueError(
            f"image_latents must be (B, C, 1, h, w) or (B, C, h, w); got shape {tuple(image_latents.shape)}"
        )
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0 <= frame_index < num_frames:
        raise ValueError(f"frame_index {frame_index} is outside 0..{num_frames - 1}")
    batch, channels, _, height, width = image_latents.shape
    condition = image_latents.new_zeros((batch, channels + 1, num_frames, height, width))
    condition[:, :channels, frame_index] = image_latents[:, :, 0]
    condition[:, channels, frame_index] = 1.0
    return condition


def pixel_unshuffle_video(video: torch.Tensor, factor: int) -> torch.Tensor:
    """Fold ``factor x factor`` pixel blocks into channels frame by frame: ``(B, C, F, H, W)`` ->
    ``(B, C*factor*factor, F, H/factor, W/factor)`` with torch's ``pixel_unshuffle`` channel order
    (channel ``c*factor*factor + dy*factor + dx``), as the released flow ControlNet's ``PixelUnshuffle``.
    """
    if video.ndim != 5:
        raise ValueError(f"expected a (B, C, F, H, W) video, got shape {tuple(video.shape)}")
    batch, channels, frames, height, width = video.shape
    if factor < 1 or height % factor or width % factor:
        raise ValueError(
            f"height {height} and width {width} must be multiples of the unshuffle factor {factor}"
        )
    if factor == 1:
        return video
    per_frame = video.transpose(1, 2).reshape(batch * frames, channels, height, width)
    folded = F.pixel_unshuffle(per_frame, factor)
    return folded.reshape(batch, frames, *folded.shape[1:]).transpose(1, 2)
