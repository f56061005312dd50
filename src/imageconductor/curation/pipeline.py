"""Orchestration: pass 1 for every input, the global motion cut, pass 2 for the kept clips, then shards.

Everything a run learns is cached per input under ``OUT/.curation-work/<fingerprint>/``, so a rerun after
a crash or ``kill -9`` only does the unfinished inputs. Shards are assembled at the end in input order
with a fixed number of samples per shard, each written to a temporary file and renamed into place: the
final shards of an interrupted-and-resumed run equal those of an uninterrupted one.
"""

from __future__ import annotations

import fcntl
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from imageconductor.curation.captioning import check_caption_model
from imageconductor.curation.config import CurationConfig
from imageconductor.curation.engine_local import LocalEngine
from imageconductor.curation.engine_ray import RayEngine
from imageconductor.curation.errors import CurationError, InputListError
from imageconductor.curation.inputs import InputItem, discover_inputs
from imageconductor.curation.motion import low_motion_keys, make_flow_backend
from imageconductor.curation.shards import (
    SHARD_DIR,
    SHARD_PATTERN,
    Sample,
    format_summary_table,
    remove_stale_shards,
    summary_counts,
    write_index,
    write_shard,
)
from imageconductor.curation.stages import CANDIDATE
from imageconductor.curation.tracking import make_tracker
from imageconductor.curation.workdir import WorkDir, atomic_write_text
from imageconductor.files import FileCheckError, check_output_folder

ENGINES = ("local", "ray")
LOW_MOTION = "low_motion"
TRACKING_ERROR = "tracking_error"


@dataclass
class CurationResult:
    """Where the outputs are and what happened (also written to ``OUT/summary.json``)."""

    out_dir: Path
    shards: list[Path]
    index_path: Path
    report_path: Path
    summary: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class DryRunReport:
    """What a run would do, without doing it."""

    num_inputs: int
    pass1_cached: int
    pass2_cached: int
    engine: str
    config: CurationConfig
    work_dir: Path

    def describe(self) -> str:
        return (
            f"dry run: {self.num_inputs} input(s); pass 1 cached for {self.pass1_cached}, "
            f"to do {self.num_inputs - self.pass1_cached}; pass 2 cached for {self.pass2_cached}; "
            f"engine {self.engine}; cache {self.work_dir}; drop lowest "
            f"{self.config.motion_drop_fraction:.0%} by motion; {self.config.num_frames} frames "
            f"{self.config.width}x{self.config.height}, stride {self.config.stride_min}..{self.config.stride_max}, "
            f"{self.config.samples_per_shard} samples per shard"
        )


def check_backends(config: CurationConfig) -> None:
    """Fail early, with a clear message, when an optional backend is requested but unusable."""
    if config.motion_backend != "dis":
        make_flow_backend(config.motion_backend, config.raft_weights)
    if config.tracker != "lk":
        make_tracker(config.tracker, cotracker_checkpoint=config.cotracker_checkpoint)
    if config.caption_model:
        check_caption_model(config.caption_model)


def make_engine(engine: str, workers: int = 1, ray_address: str | None = None):
    """The named engine: ``"local"`` (``workers`` processes) or ``"ray"`` (local cluster or ``ray_address``)."""
    if engine == "local":
        return LocalEngine(workers=workers)
    if engine == "ray":
        return RayEngine(address=ray_address, num_cpus=workers if workers > 1 else None)
    raise ValueError(f"unknown engine {engine!r}: use one of {ENGINES}")


class _OutputLock:
    """An exclusive lock on OUT (released by the OS if the process dies, so kill -9 leaves none)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / ".curation.lock"

    def __enter__(self):
        self.handle = open(self.path, "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self.handle.close()
            raise CurationError(f"another curation run is writing to {self.path.parent}") from exc
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def curate(
    inputs: str | Path | Sequence[InputItem],
    out_dir: str | Path,
    config: CurationConfig | None = None,
    *,
    engine: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
    dry_run: bool = False,
    log=None,
) -> CurationResult | DryRunReport:
    """Curate ``inputs`` (folder / list / CSV / JSONL, or InputItems) into WebDataset shards under ``out_dir``."""
    config = config or CurationConfig()
    config.validate()
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {ENGINES}")
    items = discover_inputs(inputs) if isinstance(inputs, (str, Path)) else list(inputs)
    seen: set[str] = set()
    for item in items:
        if item.key in seen:
            raise InputListError(f"duplicate input id {item.input_id!r}")
        seen.add(item.key)
    out_dir = Path(out_dir)
    source_folder = inputs if isinstance(inputs, (str, Path)) and Path(inputs).is_dir() else None
    try:
        check_output_folder(out_dir, not_inside=source_folder)
    except FileCheckError as exc:
        raise CurationError(f"output folder: {exc}") from None
    check_backends(config)
    work = WorkDir(out_dir, config.fingerprint())
    log = log or (lambda message: print(message, file=sys.stderr))

    if dry_run:
        cached1 = sum(1 for item in items if work.has_pass1(item.key)) if work.root.is_dir() else 0
        cached2 = sum(1 for item in items if work.has_pass2(item.key)) if work.root.is_dir() else 0
        return DryRunReport(len(items), cached1, cached2, engine, config, work.root)

    out_dir.mkdir(parents=True, exist_ok=True)
    with _OutputLock(out_dir):
        work.create()
        atomic_write_text(out_dir / "curation_config.json", config.to_json() + "\n")
        runner = make_engine(engine, workers, ray_address)
        try:
            _run_pass1(runner, items, config, work, progress)
            kept_keys, threshold = _motion_filter(items, config, work)
            _run_pass2(runner, items, kept_keys, config, work, progress)
        finally:
            runner.close()
        result = _assemble(items, kept_keys, threshold, config, work, out_dir, progress)
    log(format_summary_table(result.summary))
    log(f"{len(result.shards)} shard(s) in {out_dir / SHARD_DIR}; index {result.index_path.name}")
    if result.summary["kept"] == 0:
        log(nothing_kept_message(result))
    return result


def nothing_kept_message(result: CurationResult) -> str:
    """The line that says a run kept no clip, with the reasons its inputs were dropped."""
    reasons = ", ".join(f"{count} {reason}" for reason, count in result.summary["dropped_by_reason"].items())
    return (
        f"no clip was kept from {result.summary['inputs']} input(s)"
        + (f" (dropped: {reasons})" if reasons else "")
        + f"; see {result.report_path} for each input's reason"
    )


def _run_pass1(runner, items, config, work, progress) -> None:
    todo = [item for item in items if not work.has_pass1(item.key)]
    bar = tqdm(
        total=len(items),
        initial=len(items) - len(todo),
        desc="pass 1: decode/cut/score",
        disable=not progress,
    )
    for result in runner.run_pass1(todo, config):
        work.save_pass1(result)
        bar.update(1)
    bar.close()


def _motion_filter(items, config, work) -> tuple[set[str], float | None]:
    scores = []
    for item in items:
        record = work.load_pass1_record(item.key)
        if record["status"] == CANDIDATE:
            scores.append((item.key, float(record["motion_score"])))
    dropped, threshold = low_motion_keys(scores, config.motion_drop_fraction)
    return {key for key, _ in scores if key not in dropped}, threshold


def _run_pass2(runner, items, kept_keys, config, work, progress) -> None:
    todo = [item.key for item in items if item.key in kept_keys and not work.has_pass2(item.key)]
    total = len(kept_keys)
    bar = tqdm(total=total, initial=total - len(todo), desc="pass 2: track", disable=not progress)
    jobs = ((key, work.load_clip(key)) for key in todo)
    for result in runner.run_pass2(jobs, config):
        work.save_pass2(result)
        bar.update(1)
    bar.close()


def _sample_metadata(record: dict[str, Any], info: dict[str, Any], config: CurationConfig) -> dict[str, Any]:
    keys = (
        "input_id",
        "source",
        "caption",
        "scene",
        "cuts",
        "window_start",
        "stride",
        "frame_indices",
        "crop",
        "motion_score",
        "source_fps",
        "source_frames",
        "source_size",
        "resized_size",
    )
    metadata = {name: record[name] for name in keys}
    metadata["caption_source"] = record.get("caption_source", "sidecar" if record["caption"] else "none")
    metadata.update(
        {name: info[name] for name in ("kind", "kind_moving_points", "kind_tracked_points") if name in info}
    )
    metadata.update(
        num_frames=config.num_frames,
        width=config.width,
        height=config.height,
        fps=config.output_fps,
        grid_size=config.grid_size,
        tracker=config.tracker,
        track_trust=config.track_trust,
        motion_backend=config.motion_backend,
        config_fingerprint=config.fingerprint(),
    )
    return metadata


def _assemble(items, kept_keys, threshold, config, work, out_dir, progress) -> CurationResult:
    report_rows: list[dict[str, Any]] = []
    stage_seconds: dict[str, float] = defaultdict(float)
    kept_items: list[tuple[InputItem, dict[str, Any]]] = []
    for item in items:
        record = work.load_pass1_record(item.key)
        for name, seconds in work.load_pass1_timings(item.key).items():
            stage_seconds[name] += seconds
        row = {"input_id": item.input_id, "key": item.key, "source": item.path, "status": "dropped"}
        if record["status"] != CANDIDATE:
            row.update(reason=record["reason"], detail=record.get("detail", ""))
        elif item.key not in kept_keys:
            row.update(
                reason=LOW_MOTION, detail=f"motion score {record['motion_score']} <= threshold {threshold}"
            )
        else:
            _, _, error, timings = work.load_pass2(item.key)
            for name, seconds in timings.items():
                stage_seconds[name] += seconds
            if error is not None:
                row.update(reason=TRACKING_ERROR, detail=error)
            else:
                row.update(status="kept", reason="", detail="")
                kept_items.append((item, record))
        if "motion_score" in record:
            row["motion_score"] = record["motion_score"]
        report_rows.append(row)

    per_shard = config.samples_per_shard
    shard_names = [SHARD_PATTERN.format(i) for i in range((len(kept_items) + per_shard - 1) // per_shard)]
    index_rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    bar = tqdm(total=len(kept_items), desc="writing shards", disable=not progress)
    for shard_number, name in enumerate(shard_names):
        chunk = kept_items[shard_number * per_shard : (shard_number + 1) * per_shard]
        samples = []
        for position, (item, record) in enumerate(chunk):
            tracks, visibility, _, _ = work.load_pass2(item.key)
            metadata = _sample_metadata(record, work.load_pass2_info(item.key), config)
            samples.append(Sample(item.key, work.load_clip(item.key), tracks, visibility, metadata))
            index_rows.append(
                {
                    "key": item.key,
                    "shard": f"{SHARD_DIR}/{name}",
                    "position": position,
                    "input_id": item.input_id,
                    "source": item.path,
                    "caption": metadata["caption"],
                    "kind": metadata.get("kind"),
                    "motion_score": record["motion_score"],
                    "stride": record["stride"],
                    "window_start": record["window_start"],
                    "scene_start": record["scene"][0],
                    "scene_end": record["scene"][1],
                    "num_frames": int(tracks.shape[0]),
                    "num_tracks": int(tracks.shape[1]),
                    "visible_fraction": round(float(visibility.mean()), 6),
                }
            )
        write_shard(out_dir / SHARD_DIR / name, samples)
        bar.update(len(chunk))
    bar.close()
    stage_seconds["shard_write"] += time.perf_counter() - start
    remove_stale_shards(out_dir, set(shard_names))

    index_path = out_dir / f"index.{config.index_format}"
    stale_index = out_dir / f"index.{'jsonl' if config.index_format == 'parquet' else 'parquet'}"
    stale_index.unlink(missing_ok=True)
    write_index(index_path, index_rows, config.index_format)
    report_path = out_dir / "report.jsonl"
    atomic_write_text(report_path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in report_rows))
    summary = summary_counts(report_rows)
    summary.update(
        motion_threshold=threshold,
        shards=[f"{SHARD_DIR}/{name}" for name in shard_names],
        samples_per_shard=per_shard,
        config_fingerprint=config.fingerprint(),
    )
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    atomic_write_text(
        out_dir / "timings.json", json.dumps(dict(stage_seconds), indent=2, sort_keys=True) + "\n"
    )
    return CurationResult(
        out_dir=out_dir,
        shards=[out_dir / SHARD_DIR / name for name in shard_names],
        index_path=index_path,
        report_path=report_path,
        summary=summary,
        stage_seconds=dict(stage_seconds),
    )
