"""WebDataset tar shards, the sample index and the kept/dropped report, all written atomically."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from imageconductor.curation.codec import array_to_npy
from imageconductor.curation.workdir import atomic_write_bytes, atomic_write_text

SHARD_DIR = "shards"
SHARD_PATTERN = "shard-{:06d}.tar"
# Fixed tar header fields so the same samples always give the same bytes.
_TAR_OWNER = "imageconductor"


@dataclass
class Sample:
    """One curated clip as it goes into a shard."""

    key: str
    clip: bytes
    tracks: np.ndarray
    visibility: np.ndarray
    metadata: dict[str, Any]

    def to_wds(self) -> dict[str, Any]:
        return {
            "__key__": self.key,
            "mp4": self.clip,
            "tracks.npy": array_to_npy(self.tracks.astype(np.float16)),
            "visibility.npy": array_to_npy(self.visibility.astype(bool)),
            "json": json.dumps(self.metadata, sort_keys=True, separators=(",", ":")).encode("utf-8"),
            "txt": str(self.metadata.get("caption", "")).encode("utf-8"),
        }


def write_shard(path: Path, samples: Sequence[Sample]) -> None:
    """Write one tar shard via a temporary file and an atomic rename (fixed mtime/owner: reproducible bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temp, "wb") as handle:
            writer = wds.TarWriter(
                handle, user=_TAR_OWNER, group=_TAR_OWNER, mode=0o444, encoder=False, mtime=0.0
            )
            for sample in samples:
                writer.write(sample.to_wds())
            writer.close()
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def shard_paths(out_dir: Path) -> list[Path]:
    return sorted((out_dir / SHARD_DIR).glob("shard-*.tar"))


def remove_stale_shards(out_dir: Path, keep: set[str]) -> list[Path]:
    """Delete shard files (and leftover temporaries) not in ``keep``; returns what was removed."""
    removed = []
    shard_dir = out_dir / SHARD_DIR
    if not shard_dir.is_dir():
        return removed
    for path in sorted(shard_dir.iterdir()):
        is_temporary = path.name.startswith(".") and ".tmp-" in path.name
        if is_temporary or (path.suffix == ".tar" and path.name not in keep):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_index(path: Path, rows: list[dict[str, Any]], fmt: str) -> Path:
    """The sample index: one row per sample (shard, key, caption, scores...), as Parquet or JSONL."""
    if fmt == "jsonl":
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        atomic_write_text(path, text)
        return path

    columns = sorted({name for row in rows for name in row}) if rows else ["key", "shard"]
    table = pa.table({name: [row.get(name) for row in rows] for name in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def read_index(path: str | Path) -> list[dict[str, Any]]:
    """Rows of an index file written by :func:`write_index`."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    return pq.read_table(path).to_pylist()


def summary_counts(report_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Kept / dropped totals and dropped counts per reason."""
    reasons = Counter(row["reason"] for row in report_rows if row["status"] == "dropped")
    kept = sum(1 for row in report_rows if row["status"] == "kept")
    return {
        "inputs": len(report_rows),
        "kept": kept,
        "dropped": len(report_rows) - kept,
        "dropped_by_reason": dict(sorted(reasons.items())),
    }


def format_summary_table(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary (the CLI prints it)."""
    lines = [f"{'status / reason':<28}{'inputs':>8}", "-" * 36, f"{'kept':<28}{summary['kept']:>8}"]
    lines.append(f"{'dropped':<28}{summary['dropped']:>8}")
    for reason, count in summary["dropped_by_reason"].items():
        lines.append(f"{'  ' + reason:<28}{count:>8}")
    lines.append("-" * 36)
    lines.append(f"{'total':<28}{summary['inputs']:>8}")
    return "\n".join(lines)
