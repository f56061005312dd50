"""Curation throughput on synthetic raw videos generated on the fly: clips per second per core.

Prints, for DIS + LK at 32 x 256 x 384:
- per stage: each stage function run in this process, single-threaded OpenCV, timed in CPU seconds
  (what one core spends, robust to other load on the machine) and in wall seconds;
- the whole pipeline end to end (``curate``, local engine, 1 worker and N workers), CPU seconds of all
  processes and wall time;
- a baseline in the same run: the same stages with the tools' default presets (DIS MEDIUM, x264 medium).

    python benchmarks/curation_throughput.py --clips 16 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from imageconductor.curation.config import CurationConfig
from imageconductor.curation.demo import write_demo_corpus
from imageconductor.curation.inputs import discover_inputs
from imageconductor.curation.pipeline import curate
from imageconductor.curation.stages import CANDIDATE, analyse_input, annotate_clip

STAGES = ("decode", "cuts", "window", "motion", "crop_encode", "decode_clip", "tracking")


def time_stages(items, config: CurationConfig) -> tuple[dict[str, float], int]:
    """Seconds per stage (wall, and ``<stage>.cpu``) summed over all inputs, and the number of clips made."""
    totals: dict[str, float] = defaultdict(float)
    clips = 0
    for item in items:
        first = analyse_input(item, config)
        for name, seconds in first.timings.items():
            totals[name] += seconds
        if first.record["status"] != CANDIDATE:
            continue
        second = annotate_clip(item.key, first.clip, config)
        for name, seconds in second.timings.items():
            totals[name] += seconds
        clips += 1
    return dict(totals), clips


def print_stage_table(title: str, totals: dict[str, float], clips: int) -> None:
    print(f"\n{title}: {clips} clips")
    print(f"{'stage':<14}{'cpu ms/clip':>12}{'clips/s/core':>14}{'wall ms/clip':>14}")
    for name in STAGES:
        cpu, wall = totals.get(f"{name}.cpu", 0.0), totals.get(name, 0.0)
        rate = clips / cpu if cpu else float("inf")
        print(f"{name:<14}{1000 * cpu / clips:>12.1f}{rate:>14.1f}{1000 * wall / clips:>14.1f}")
    cpu = sum(totals.get(f"{name}.cpu", 0.0) for name in STAGES)
    wall = sum(totals.get(name, 0.0) for name in STAGES)
    print(f"{'all stages':<14}{1000 * cpu / clips:>12.1f}{clips / cpu:>14.2f}{1000 * wall / clips:>14.1f}")


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished child processes (the worker pool)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16, help="number of raw input videos")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="workers for the parallel run"
    )
    parser.add_argument("--frames-per-scene", type=int, nargs=2, default=(40, 64))
    parser.add_argument("--keep", type=Path, default=None, help="keep the corpus and outputs in this folder")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="ic-curation-bench-"))
    try:
        start = time.perf_counter()
        corpus = write_demo_corpus(
            root / "corpus",
            num_videos=args.clips,
            seed=7,
            num_scenes=2,
            frames_per_scene=tuple(args.frames_per_scene),
        )
        print(
            f"generated {args.clips} raw videos (2 scenes of {args.frames_per_scene} frames, 384x256) "
            f"in {time.perf_counter() - start:.1f} s (not counted); load average {os.getloadavg()[0]:.1f}"
        )
        items = discover_inputs(corpus.manifest)
        config = CurationConfig(motion_drop_fraction=0.0)
        analyse_input(items[0], config)  # warm up imports and codecs

        totals, clips = time_stages(items, config)
        print_stage_table("per stage, defaults (DIS fast, LK + refinement, x264 veryfast)", totals, clips)
        baseline = config.replace(dis_preset="medium", x264_preset="medium")
        base_totals, base_clips = time_stages(items, baseline)
        print_stage_table(
            "baseline: tools' default presets (DIS medium, x264 medium)", base_totals, base_clips
        )

        print("\nwhole pipeline (curate, local engine; with caching, the percentile pass and shard writing)")
        for workers in sorted({1, max(1, args.workers)}):
            out = root / f"out_w{workers}"
            shutil.rmtree(out, ignore_errors=True)
            start, cpu_start = time.perf_counter(), cpu_seconds()
            result = curate(corpus.manifest, out, config, workers=workers, progress=False, log=lambda m: None)
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
            made = result.summary["kept"]
            print(
                f"workers={workers}: {made} clips, {cpu:.2f} CPU-s in all processes -> "
                f"{made / cpu:.2f} clips/s/core; {wall:.2f} s wall -> {made / wall:.2f} clips/s"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
