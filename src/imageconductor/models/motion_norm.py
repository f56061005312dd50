"""Per-frame GroupNorm for the temporal (motion) modules.

The released AnimateDiff / Image Conductor motion modules normalise every frame on its own, while
diffusers' ``AnimateDiffTransformer3D`` pools the GroupNorm statistics over all frames of a clip. We keep
diffusers' modules and parameter names and only change how their ``norm`` computes statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import nn


class PerFrameGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that, given a video ``(B, C, F, H, W)``, normalises each frame separately.

    Four-dimensional inputs behave exactly as in ``nn.GroupNorm``. The parameters (``weight``, ``bias``)
    and their names are those of ``nn.GroupNorm``, so state dicts are unchanged.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - same name as nn.GroupNorm
        if input.ndim != 5:
            return super().forward(input)
        batch, channels, frames, height, width = input.shape
        per_frame = input.transpose(1, 2).reshape(batch * frames, channels, height, width)
        normed = F.group_norm(per_frame, self.num_groups, self.weight, self.bias, self.eps)
        return normed.reshape(batch, frames, channels, height, width).transpose(1, 2)


def use_per_frame_motion_norms(model: nn.Module) -> int:
    """Switch the ``norm`` of every motion module in ``model`` to :class:`PerFrameGroupNorm` in place.

    The existing GroupNorm instances keep their parameters, device and dtype (only their class changes),
    so this works on models whose weights are still on the meta device. Returns how many were switched.
    """
    switched = 0
    for module in model.modules():
        if isinstance(module, AnimateDiffTransformer3D) and type(module.norm) is nn.GroupNorm:
            module.norm.__class__ = PerFrameGroupNorm
            switched += 1
    return switched
