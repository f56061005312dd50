"""Random access to the samples of curation shards (WebDataset tar files) without unpacking them."""

from __future__ import annotations

import glob
import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imageconductor.curation.codec import npy_to_array
from imageconductor.video_io import decode_mp4_bytes

REQUIRED_PARTS = ("mp4", "tracks.npy", "visibility.npy", "json")


class ShardFormatError(ValueError):
    """A shard is missing, unreadable, or a sample lacks one of its parts."""


@dataclass(frozen=True)
class SampleLocation:
    """Where each part of one sample sits inside its shard: part name -> (byte offset, size)."""

    shard: str
    key: str
    parts: dict[str, tuple[int, int]]


@dataclass
class ShardSample:
    """One decoded curated clip."""

    key: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    tracks: np.ndarray  # (T, N, 2) float32, pixels of the frame
    visibility: np.ndarray  # (T, N) bool
    metadata: dict[str, Any]

    @property
    def caption(self) -> str:
        return str(self.metadata.get("caption", ""))


def resolve_shards(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Shard files from a curation output folder, a ``shards/`` folder, a glob, one file or a list."""
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
    else:
        source = Path(source)
        if source.is_dir():
            folder = source / "shards" if (source / "shards").is_dir() else source
            paths = sorted(folder.glob("*.tar"))
        elif any(ch in str(source) for ch in "*?["):
            paths = sorted(Path(p) for p in glob.glob(str(source)))
        else:
            paths = [source]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ShardFormatError(f"shard file(s) not found: {', '.join(missing)}")
    if not paths:
        raise ShardFormatError(f"no .tar shards found at {source}")
    return paths


def index_shard(path: str | Path) -> list[SampleLocation]:
    """Locate every sample of one shard (samples are consecutive tar members sharing a key)."""
    path = Path(path)
    grouped: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, "r:") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = Path(member.name).name
                key, _, part = name.partition(".")
                grouped.setdefault(key, {})[part] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError) as exc:
        raise ShardFormatError(f"cannot read shard {path}: {exc}") from exc
    locations = []
    for key, parts in grouped.items():
        missing = [part for part in REQUIRED_PARTS if part not in parts]
        if missing:
            raise ShardFormatError(f"sample {key!r} in {path} lacks {', '.join(missing)}")
        locations.append(SampleLocation(str(path), key, parts))
    return locations


def read_part(location: SampleLocation, part: str) -> bytes:
    offset, size = location.parts[part]
    with open(location.shard, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def read_metadata(location: SampleLocation) -> dict[str, Any]:
    """The JSON metadata of one sample (nothing else is read)."""
    return json.loads(read_part(location, "json"))


def load_sample(location: SampleLocation, decode_frames: bool = True) -> ShardSample:
    """Read and decode one sample (frames decoded from its MP4 unless ``decode_frames`` is False)."""
    metadata = read_metadata(location)
    tracks = npy_to_array(read_part(location, "tracks.npy")).astype(np.float32)
    visibility = npy_to_array(read_part(location, "visibility.npy")).astype(bool)
    frames = (
        decode_mp4_bytes(read_part(location, "mp4")) if decode_frames else np.zeros((0, 0, 0, 3), np.uint8)
    )
    return ShardSample(location.key, frames, tracks, visibility, metadata)


def iter_samples(
    source: str | Path | Sequence[str | Path], decode_frames: bool = True
) -> Iterator[ShardSample]:
    """Every sample of the shards, in shard order."""
    for shard in resolve_shards(source):
        for location in index_shard(shard):
            yield load_sample(location, decode_frames)
