"""Training batches → model inputs: one batch layout, and the trajectory condition per the curriculum.

Two batch layouts reach the trainer:

- the team's contract (`training.synthetic_data`): ``frames (B, 3, F, H, W)``, ``caption``, ``kind``,
  ``tracks (B, F, N, 2)``, ``visibility (B, F, N)``, optional ``flow_condition (B, 2, F, H, W)``;
- `imageconductor.data.collate_clips` (curated shards): ``pixel_values (B, F, 3, H, W)``, ``captions``,
  ``flow_condition``, and per-sample lists ``tracks`` / ``visibility`` (N varies per clip).

`normalize_batch` maps both to `TrainingBatch`. `curriculum_flow_condition` then builds the flow
condition from the tracks — all of them during the dense phase, ``n ∈ [min, max]`` sampled ∝ motion
intensity afterwards (paper §2.2, `trajectories.sample_sparse_tracks`) — with the same writing and blur as
inference (`trajectories.flow_condition_from_dense`). Without tracks, the batch's own condition is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imageconductor.training.config import CurriculumConfig
from imageconductor.trajectories import (
    RELEASED_FLOW_ENCODING,
    FlowEncoding,
    flow_condition_from_dense,
    sample_sparse_tracks,
)


@dataclass
class TrainingBatch:
    """One micro-batch in the layout the diffusion task uses."""

    frames: torch.Tensor  # (B, 3, F, H, W) in [-1, 1]
    captions: list[str]
    flow_condition: torch.Tensor | None  # (B, 2, F, H, W)
    tracks: list[torch.Tensor] | None  # B × (F, N_b, 2)
    visibility: list[torch.Tensor] | None  # B × (F, N_b)
    kinds: list[str] | None

    @property
    def size(self) -> int:
        return int(self.frames.shape[0])


def normalize_batch(batch: dict[str, Any]) -> TrainingBatch:
    """Accept either batch layout (see the module docstring); raise ``KeyError`` naming what is missing."""
    if "frames" in batch:
        frames = batch["frames"]
    elif "pixel_values" in batch:
        frames = batch["pixel_values"].permute(0, 2, 1, 3, 4)
    else:
        raise KeyError(
            f"a training batch needs 'frames' (B,3,F,H,W) or 'pixel_values'; got keys {sorted(batch)}"
        )
    if frames.ndim != 5 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (B, 3, F, H, W), got {tuple(frames.shape)}")
    captions = batch.get("caption", batch.get("captions"))
    if captions is None:
        raise KeyError(f"a training batch needs 'caption' (list of str); got keys {sorted(batch)}")
    captions = [captions] if isinstance(captions, str) else list(captions)
    if len(captions) != frames.shape[0]:
        raise ValueError(f"{len(captions)} captions for a batch of {frames.shape[0]} clips")
    kinds = batch.get("kind")
    return TrainingBatch(
        frames=frames,
        captions=captions,
        flow_condition=batch.get("flow_condition"),
        tracks=_per_sample(batch.get("tracks")),
        visibility=_per_sample(batch.get("visibility")),
        kinds=None if kinds is None else list(kinds),
    )


def is_dense_step(step: int, curriculum: CurriculumConfig) -> bool:
    """Whether optimizer step ``step`` (0-based) still trains on dense trajectories."""
    return curriculum.dense_steps == -1 or step < curriculum.dense_steps


def curriculum_flow_condition(
    batch: TrainingBatch,
    step: int,
    seed: int,
    curriculum: CurriculumConfig,
    encoding: FlowEncoding = RELEASED_FLOW_ENCODING,
) -> torch.Tensor:
    """The ``(B, 2, F, H, W)`` flow condition for this step: dense or sparse tracks, seeded by ``seed``,
    blurred per ``encoding`` (the loader's dense condition must match it)."""
    if batch.tracks is None:
        if batch.flow_condition is None:
            raise KeyError("a training batch needs 'tracks' or 'flow_condition' for the trajectory condition")
        return batch.flow_condition.float()
    dense = is_dense_step(step, curriculum)
    if dense and batch.flow_condition is not None:
        return batch.flow_condition.float()  # the loader already built the all-track condition
    _, _, _, height, width = batch.frames.shape
    conditions = []
    for row in range(batch.size):
        tracks = batch.tracks[row].detach().cpu().numpy().astype(np.float64)
        visibility = (
            None if batch.visibility is None else batch.visibility[row].detach().cpu().numpy().astype(bool)
        )
        if not dense:
            chosen = sample_sparse_tracks(
                tracks,
                visibility,
                np.random.default_rng([seed, row]),
                curriculum.sparse_min_tracks,
                curriculum.sparse_max_tracks,
            )
            tracks = tracks[:, chosen]
            visibility = None if visibility is None else visibility[:, chosen]
        conditions.append(
            flow_condition_from_dense(tracks, height, width, visibility, **encoding.as_kwargs())[0]
        )
    return torch.stack(conditions).float().to(batch.frames.device)


def _per_sample(value: Any) -> list[torch.Tensor] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return list(value.unbind(0))
    if isinstance(value, Sequence):
        return [torch.as_tensor(item) for item in value]
    raise TypeError(f"tracks/visibility must be a tensor or a list of tensors, got {type(value).__name__}")
