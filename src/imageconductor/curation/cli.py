"""``imageconductor curate INPUT OUT``: the command-line front of the curation pipeline.

The lead wires :func:`add_parser` / :func:`run` into the main CLI; ``python -m imageconductor.curation.cli``
runs it on its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imageconductor.cli import positive_int
from imageconductor.curation.config import (
    DIS_PRESETS,
    INDEX_FORMATS,
    MOTION_BACKENDS,
    TRACKERS,
    CurationConfig,
)
from imageconductor.curation.errors import (
    BackendUnavailableError,
    CurationConfigError,
    CurationError,
    InputListError,
)

# CLI flag -> CurationConfig field, for the settings that can be given on the command line.
_CONFIG_FLAGS = {
    "seed": "seed",
    "num_frames": "num_frames",
    "stride_min": "stride_min",
    "stride_max": "stride_max",
    "motion_drop": "motion_drop_fraction",
    "motion_backend": "motion_backend",
    "dis_preset": "dis_preset",
    "raft_weights": "raft_weights",
    "tracker": "tracker",
    "cotracker_checkpoint": "cotracker_checkpoint",
    "grid_size": "grid_size",
    "scene_threshold": "scene_threshold",
    "samples_per_shard": "samples_per_shard",
    "index_format": "index_format",
    "max_source_frames": "max_source_frames",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``curate`` subcommand to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "curate",
        help="curate raw videos into trajectory-annotated WebDataset shards",
        description="Decode, cut-detect, motion-filter, crop and track videos; write WebDataset shards.",
    )
    configure_parser(parser)
    parser.set_defaults(func=run)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="a folder of videos, a list file, or a CSV/JSONL manifest")
    parser.add_argument("out", type=Path, help="output folder (shards/, index, report.jsonl, summary.json)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="execution engine")
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes (local) / CPUs (ray)"
    )
    parser.add_argument(
        "--ray-address", default=None, help="address of an existing Ray cluster (default: local)"
    )
    parser.add_argument("--config", type=Path, default=None, help="CurationConfig as JSON or YAML")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done and exit")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    group = parser.add_argument_group("settings (override --config)")
    group.add_argument("--seed", type=int)
    group.add_argument("--num-frames", type=int)
    group.add_argument("--stride-min", type=int)
    group.add_argument("--stride-max", type=int)
    group.add_argument("--motion-drop", type=float, help="fraction of lowest-motion clips to drop (0.25)")
    group.add_argument("--motion-backend", choices=MOTION_BACKENDS)
    group.add_argument("--dis-preset", choices=DIS_PRESETS, help="DIS speed/quality preset (fast)")
    group.add_argument("--raft-weights", help="TorchScript RAFT file for --motion-backend raft")
    group.add_argument("--tracker", choices=TRACKERS)
    group.add_argument("--cotracker-checkpoint", help="local CoTracker checkpoint for --tracker cotracker")
    group.add_argument("--grid-size", type=int)
    group.add_argument("--scene-threshold", type=float)
    group.add_argument("--samples-per-shard", type=int)
    group.add_argument("--index-format", choices=INDEX_FORMATS)
    group.add_argument("--max-source-frames", type=int)


def build_config(args: argparse.Namespace) -> CurationConfig:
    """Config file (if any) with command-line overrides applied."""
    config = CurationConfig.load(args.config) if args.config else CurationConfig()
    overrides = {field: getattr(args, flag) for flag, field in _CONFIG_FLAGS.items()}
    overrides = {field: value for field, value in overrides.items() if value is not None}
    return CurationConfig.from_dict({**config.to_dict(), **overrides}) if overrides else config


def run(args: argparse.Namespace) -> int:
    """Run the ``curate`` subcommand; returns the exit status (2 for bad arguments)."""
    from imageconductor.curation.pipeline import DryRunReport, curate

    try:
        config = build_config(args)
        result = curate(
            args.input,
            args.out,
            config,
            engine=args.engine,
            workers=args.workers,
            ray_address=args.ray_address,
            progress=not args.no_progress,
            dry_run=args.dry_run,
        )
    except (CurationConfigError, InputListError, BackendUnavailableError, CurationError, ValueError) as exc:
        print(f"imageconductor curate: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(result, DryRunReport):
        print(result.describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imageconductor-curate", description=__doc__.splitlines()[0])
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
