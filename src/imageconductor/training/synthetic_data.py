"""Training clips rendered on the fly from the synthetic world (stage 0, smoke tests, the embedded default).

Item ``i`` of `SyntheticClipDataset` is a deterministic function of ``(seed, i)``: a random clip spec of the
requested kinds is rendered, a regular grid of points on frame 0 is tracked exactly through the clip, and
the item follows the training batch contract (per sample, before collation)::

    {"frames": float32 (3, F, H, W) in [-1, 1], "caption": str, "kind": str,
     "tracks": float32 (F, N, 2), "visibility": bool (F, N),
     "flow_condition": float32 (2, F, H, W),          # only with flow="dense" (blurred per flow_encoding)
     "sprite_mask": bool (F, H, W)}                    # only with sprite_masks=True: sprite pixels

With ``flow="none"`` the flow condition is left to the training task, which builds it dense or sparse per
the curriculum (see `training.conditions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from imageconductor.synthetic import BACKGROUND, random_clip_spec, render_clip
from imageconductor.trajectories import (
    RELEASED_FLOW_ENCODING,
    FlowEncoding,
    flow_condition_from_dense,
    grid_points,
)

#: ``flow`` of `SyntheticClipDataset`: no flow condition, or the condition of all grid tracks.
FLOW_CONDITIONS = ("none", "dense")


class SyntheticClipDataset(Dataset):
    """``num_clips`` synthetic clips (``kinds``: any of "camera", "object", "mixed"; None = all three)."""

    def __init__(
        self,
        num_clips: int,
        num_frames: int,
        height: int,
        width: int,
        seed: int = 0,
        kinds: Sequence[str] | None = None,
        grid_size: int = 16,
        flow: str = "none",
        texture_scale: float = 1.0,
        motion_scale: float = 1.0,
        sprite_scale: float = 1.0,
        sprite_masks: bool = False,
        flow_encoding: FlowEncoding = RELEASED_FLOW_ENCODING,
    ) -> None:
        if flow not in FLOW_CONDITIONS:
            raise ValueError(f"flow must be one of {list(FLOW_CONDITIONS)}, got {flow!r}")
        if num_clips <= 0 or num_frames < 2 or grid_size <= 0:
            raise ValueError(
                f"need num_clips > 0, num_frames >= 2, grid_size > 0; got {num_clips}, {num_frames}, {grid_size}"
            )
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.height = height
        self.width = width
        self.seed = seed
        self.kinds = list(kinds) if kinds else None
        self.grid_size = grid_size
        self.flow = flow
        self.texture_scale = texture_scale
        self.motion_scale = motion_scale
        self.sprite_scale = sprite_scale
        self.sprite_masks = sprite_masks
        self.flow_encoding = flow_encoding

    def __len__(self) -> int:
        return self.num_clips

    def clip_seed(self, index: int) -> int:
        """The synthetic-world seed of item ``index``."""
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        seed = self.clip_seed(index)
        kind = None
        if self.kinds:
            kind = self.kinds[int(np.random.default_rng(seed).integers(len(self.kinds)))]
        spec = random_clip_spec(
            seed,
            kind=kind,
            num_frames=self.num_frames,
            width=self.width,
            height=self.height,
            texture_scale=self.texture_scale,
            motion_scale=self.motion_scale,
            sprite_scale=self.sprite_scale,
        )
        clip = render_clip(spec)
        positions, visible = clip.track_points(grid_points(self.width, self.height, self.grid_size), frame=0)
        frames = torch.from_numpy(np.ascontiguousarray(clip.frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        item: dict[str, Any] = {
            "frames": frames,
            "caption": clip.caption,
            "kind": clip.kind,
            "tracks": torch.from_numpy(positions.astype(np.float32)),
            "visibility": torch.from_numpy(visible),
        }
        if self.sprite_masks:
            layers = np.stack([clip.layer_map(frame) for frame in range(self.num_frames)])
            item["sprite_mask"] = torch.from_numpy(layers != BACKGROUND)
        if self.flow == "dense":
            item["flow_condition"] = flow_condition_from_dense(
                positions, self.height, self.width, visible, **self.flow_encoding.as_kwargs()
            )[0]
        return item
