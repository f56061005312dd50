"""``imageconductor curate INPUT OUT``: videos in, trajectory-annotated WebDataset shards out."""

from __future__ import annotations

import argparse
from pathlib import Path

from imageconductor.cli.common import CLIError, one_line, positive_int, seed_value
from imageconductor.curation.config import (
    DIS_PRESETS,
    INDEX_FORMATS,
    MOTION_BACKENDS,
    TRACK_TRUST_CHECKS,
    TRACKERS,
    CurationConfig,
)
from imageconductor.curation.errors import (
    BackendUnavailableError,
    CurationConfigError,
    CurationError,
    InputListError,
)

__all__ = ["add_parser", "build_config", "run"]

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
    "track_trust": "track_trust",
    "caption_model": "caption_model",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``curate`` subcommand to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "curate",
        help="curate raw videos into trajectory-annotated WebDataset shards",
        description="Decode, cut-detect, motion-filter, crop and track videos; write WebDataset shards.",
    )
    configure_parser(parser)
    parser.set_defaults(handler=run)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The ``curate`` arguments and options."""
    parser.add_argument(
        "input", type=Path, help="a video file, a folder of videos, a list file, or a CSV/JSONL manifest"
    )
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
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when no clip is kept (default: 0)"
    )
    group = parser.add_argument_group("settings (override --config; defaults: CurationConfig)")
    group.add_argument("--seed", type=seed_value, help="seed of every random choice (default 0)")
    group.add_argument("--num-frames", type=positive_int, help="frames per clip (default 32)")
    group.add_argument("--stride-min", type=positive_int, help="smallest frame stride (default 1)")
    group.add_argument("--stride-max", type=positive_int, help="largest frame stride (default 16)")
    group.add_argument("--motion-drop", type=float, help="fraction of lowest-motion clips to drop (0.25)")
    group.add_argument("--motion-backend", choices=MOTION_BACKENDS, help="optical flow for the motion score")
    group.add_argument("--dis-preset", choices=DIS_PRESETS, help="DIS speed/quality preset (fast)")
    group.add_argument("--raft-weights", help="TorchScript RAFT file for --motion-backend raft")
    group.add_argument("--tracker", choices=TRACKERS, help="point tracker (default lk)")
    group.add_argument("--cotracker-checkpoint", help="local CoTracker checkpoint for --tracker cotracker")
    group.add_argument("--grid-size", type=positive_int, help="tracked grid: N x N points (default 16)")
    group.add_argument(
        "--scene-threshold", type=float, help="PySceneDetect ContentDetector threshold (default 27)"
    )
    group.add_argument("--samples-per-shard", type=positive_int, help="clips per shard (default 256)")
    group.add_argument("--index-format", choices=INDEX_FORMATS, help="format of the clip index (parquet)")
    group.add_argument(
        "--max-source-frames", type=positive_int, help="decode at most this many frames of each video"
    )
    group.add_argument(
        "--track-trust",
        choices=TRACK_TRUST_CHECKS,
        help="checks a tracked point must pass to stay visible: forward-backward round trip, agreement with "
        "the dense flow, both (default fb+flow) or none",
    )
    group.add_argument(
        "--caption-model",
        help="transformers image-to-text model (name or local path) that captions clips without a sidecar "
        "caption (default: none; the paper used BLIP-2, e.g. Salesforce/blip2-opt-2.7b)",
    )


def build_config(args: argparse.Namespace) -> CurationConfig:
    """Config file (if any) with command-line overrides applied."""
    config = CurationConfig.load(args.config) if args.config else CurationConfig()
    overrides = {field: getattr(args, flag) for flag, field in _CONFIG_FLAGS.items()}
    overrides = {field: value for field, value in overrides.items() if value is not None}
    return CurationConfig.from_dict({**config.to_dict(), **overrides}) if overrides else config


def run(args: argparse.Namespace) -> int:
    """Run the ``curate`` subcommand; bad arguments and inputs raise the CLI's one-line error. A run that
    keeps no clip says so; with ``--strict`` it then exits with status 1."""
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
        raise CLIError(one_line(exc)) from exc
    if isinstance(result, DryRunReport):
        print(result.describe())
        return 0
    return 1 if args.strict and result.summary["kept"] == 0 else 0
