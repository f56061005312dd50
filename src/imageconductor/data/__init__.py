"""Training data: read curation shards and build batches with the trajectory (flow) condition."""

from __future__ import annotations

from imageconductor.data.dataset import (
    CURATED_KINDS,
    ClipDatasetConfig,
    TrajectoryClipDataset,
    TrajectoryClipStream,
    collate_clips,
    select_kinds,
)
from imageconductor.data.shard_reader import (
    SampleLocation,
    ShardFormatError,
    ShardSample,
    index_shard,
    iter_samples,
    load_sample,
    read_metadata,
    resolve_shards,
)

__all__ = [
    "CURATED_KINDS",
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
    "read_metadata",
    "resolve_shards",
    "select_kinds",
]
