"""Training datasets over curation shards: frames, caption and the trajectory (flow) condition.

Every random choice of an item (its temporal window and, with sparse tracks, which tracks) comes from a
generator seeded by ``(seed, epoch, index)``: the same seed and epoch give the same batches in any
worker layout, and each epoch (``set_epoch``) draws fresh ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from imageconductor.data.shard_reader import (
    SampleLocation,
    ShardFormatError,
    index_shard,
    load_sample,
    read_metadata,
    resolve_shards,
)
from imageconductor.trajectories import (
    OFFICIAL_BLUR_SIGMA,
    OFFICIAL_KERNEL_SIZE,
    FlowEncoding,
    flow_condition_from_dense,
    sample_sparse_tracks,
)

#: ``tracks`` of `ClipDatasetConfig`: every tracked point of a clip, or a few drawn per item.
TRACK_SELECTIONS = ("dense", "sparse")
CURATED_KINDS = ("camera", "object")
"""Clip kinds curation writes into each sample's metadata (``camera``: camera-only motion)."""


@dataclass(frozen=True)
class ClipDatasetConfig:
    """How items are built. ``num_frames=None`` uses whole clips; ``frame_stride`` spaces chosen frames.

    ``kinds``: keep only samples whose curated ``kind`` (metadata) is one of these (None: all samples).
    """

    num_frames: int | None = 16
    frame_stride: int = 1
    tracks: str = "sparse"
    n_min: int = 1
    n_max: int = 8
    #: the next three fields are the flow encoding (`flow_encoding`); the released one by default
    blur_sigma: float | str | None = OFFICIAL_BLUR_SIGMA
    kernel_size: int = OFFICIAL_KERNEL_SIZE
    kernel_normalization: str = "sum"
    seed: int = 0
    kinds: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.tracks not in TRACK_SELECTIONS:
            raise ValueError(f"tracks must be one of {TRACK_SELECTIONS}, got {self.tracks!r}")
        if self.num_frames is not None and self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 or None, got {self.num_frames}")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")
        if not 0 <= self.n_min <= self.n_max:
            raise ValueError(f"need 0 <= n_min <= n_max, got n_min={self.n_min}, n_max={self.n_max}")
        _ = self.flow_encoding  # checks the three encoding fields now rather than at the first item
        if self.kinds is not None:
            unknown = [kind for kind in self.kinds if kind not in CURATED_KINDS]
            if unknown or not self.kinds:
                raise ValueError(
                    f"kinds must be a non-empty selection of {CURATED_KINDS}, got {self.kinds!r}"
                )

    @property
    def flow_encoding(self) -> FlowEncoding:
        """``blur_sigma``, ``kernel_size`` and ``kernel_normalization`` as one `FlowEncoding`."""
        return FlowEncoding(self.blur_sigma, self.kernel_size, self.kernel_normalization)


class TrajectoryClipDataset(Dataset):
    """Map-style dataset over curation shards.

    Item ``i`` is a dict: ``pixel_values`` (F, 3, H, W) float32 in [-1, 1], ``flow_condition``
    (2, F, H, W) float32 (the Gaussian-filtered displacement condition, zero first frame), ``caption``,
    ``key``, ``track_indices`` (the tracks used), ``tracks`` (F, n, 2) and ``visibility`` (F, n) of them,
    and ``frame_indices`` (which clip frames were taken).
    """

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        config: ClipDatasetConfig | None = None,
        **overrides: Any,
    ) -> None:
        base = config or ClipDatasetConfig()
        self.config = ClipDatasetConfig(**{**base.__dict__, **overrides}) if overrides else base
        self.locations: list[SampleLocation] = [
            loc for shard in resolve_shards(shards) for loc in index_shard(shard)
        ]
        if self.config.kinds is not None:
            self.locations = select_kinds(self.locations, self.config.kinds)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.locations)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = int(epoch)

    def item_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        cfg = self.config
        rng = self.item_rng(index)
        sample = load_sample(self.locations[index])
        total = min(len(sample.frames), len(sample.tracks))
        count = total if cfg.num_frames is None else cfg.num_frames
        span = (count - 1) * cfg.frame_stride + 1
        if span > total:
            raise ValueError(
                f"sample {sample.key} has {total} frames; {count} frames at stride {cfg.frame_stride} need {span}"
            )
        start = int(rng.integers(0, total - span + 1))
        frame_indices = start + cfg.frame_stride * np.arange(count)
        frames = sample.frames[frame_indices]
        tracks = sample.tracks[frame_indices]
        visibility = sample.visibility[frame_indices]
        if cfg.tracks == "sparse":
            chosen = sample_sparse_tracks(tracks, visibility, rng, cfg.n_min, cfg.n_max)
        else:
            chosen = np.arange(tracks.shape[1])
        height, width = frames.shape[1:3]
        condition = flow_condition_from_dense(
            tracks[:, chosen],
            height,
            width,
            visibility[:, chosen],
            **cfg.flow_encoding.as_kwargs(),
        )[0]
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {
            "pixel_values": pixels,
            "flow_condition": condition.float(),
            "caption": sample.caption,
            "key": sample.key,
            "track_indices": torch.from_numpy(chosen.astype(np.int64)),
            "tracks": torch.from_numpy(tracks[:, chosen].astype(np.float32)),
            "visibility": torch.from_numpy(visibility[:, chosen]),
            "frame_indices": torch.from_numpy(frame_indices.astype(np.int64)),
        }


def select_kinds(locations: Sequence[SampleLocation], kinds: Sequence[str]) -> list[SampleLocation]:
    """The samples whose curated ``kind`` is one of ``kinds``, in order.

    Raises:
        ShardFormatError: a sample has no ``kind`` (curated before clips were labelled), or none matches.
    """
    selected = []
    for location in locations:
        kind = read_metadata(location).get("kind")
        if kind is None:
            raise ShardFormatError(
                f"sample {location.key!r} in {location.shard} has no curated kind; curate the videos again "
                "to label clips, or select no kinds"
            )
        if kind in kinds:
            selected.append(location)
    if not selected:
        raise ShardFormatError(f"no sample of kind {' or '.join(kinds)} among {len(locations)} samples")
    return selected


class TrajectoryClipStream(IterableDataset):
    """Iterable view of a :class:`TrajectoryClipDataset`: a fresh seeded order per epoch, split over workers.

    ``rank``/``world_size`` split the order between distributed processes; DataLoader workers split
    each process's share further. Items equal those of the map-style dataset at the same epoch. Call
    ``set_epoch`` before iterating; with ``persistent_workers=True`` the workers would keep the old epoch.
    """

    def __init__(
        self, dataset: TrajectoryClipDataset, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.dataset = dataset
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def order(self) -> np.ndarray:
        """This process's item order for the current epoch (before the split over DataLoader workers)."""
        indices = np.arange(len(self.dataset))
        if self.shuffle:
            rng = np.random.default_rng([self.dataset.config.seed, self.dataset.epoch, 0x5EED])
            indices = rng.permutation(indices)
        return indices[self.rank :: self.world_size]

    def __iter__(self):
        indices = self.order()
        worker = get_worker_info()
        if worker is not None:
            indices = indices[worker.id :: worker.num_workers]
        for index in indices:
            yield self.dataset[int(index)]

    def __len__(self) -> int:
        return len(self.order())


def collate_clips(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack the fixed-size tensors; keep captions, keys and the variable-size track tensors as lists."""
    stacked = ("pixel_values", "flow_condition", "frame_indices")
    out: dict[str, Any] = {name: torch.stack([item[name] for item in batch]) for name in stacked}
    for name in ("caption", "key", "track_indices", "tracks", "visibility"):
        out[name if name != "caption" else "captions"] = [item[name] for item in batch]
    return out
