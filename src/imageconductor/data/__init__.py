"""Training data: read curation shards and build batches with the trajectory (flow) condition."""

from __future__ import annotations

from imageconductor.data.dataset import (
    ClipDatasetConfig,
    TrajectoryClipDataset,
    TrajectoryClipStream,
    collate_clips,
)
from imageconductor.data.shard_reader import (
    SampleLocation,
    ShardFormatError,
    ShardSample,
    index_shard,
    iter_samples,
    load_sample,
    resolve_shards,
)

__all__ = [
    "ClipDatasetConfig",
    "SampleLocation",
    "ShardFormatError",
    "ShardSample",
    "TrajectoryClipDataset",
    "TrajectoryClipStream",
    "collate_clips",
    "index_shard",
    "iter_samples",
    "load_sample",
    "resolve_shards",
]
