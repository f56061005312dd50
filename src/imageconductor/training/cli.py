"""``imageconductor train --config cfg.yaml [--resume [latest|auto|DIR]] [--set key=value ...]``.

Also runnable as ``python -m imageconductor.training.cli ...`` (same arguments). Multi-GPU / mixed
precision: launch it with ``accelerate launch -m imageconductor.training.cli --config ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from imageconductor.training.config import ConfigError, TrainingConfig


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a stage (vae, base, controlnet, camera, object) from a YAML/JSON config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training config (.yaml/.yml/.json)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from a checkpoint: 'latest' (default when given without a value), 'auto' (latest if "
        "any, else start fresh) or a checkpoint folder",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set max_steps=100 --set optim.learning_rate=3e-4 (repeatable)",
    )
    parser.add_argument("--no-export", action="store_true", help="do not write the final model folder")


def run(args: argparse.Namespace) -> int:
    """Run the ``train`` subcommand; returns the exit status."""
    try:
        config = TrainingConfig.load(args.config, args.overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from imageconductor.training.run import run_training

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = run_training(config, resume=args.resume, export=not args.no_export)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        print(f"error: training diverged: {error}", file=sys.stderr)
        return 1
    last = result.history[-1] if result.history else {}
    summary = f"stage {config.stage}: {len(result.history)} step(s) run"
    if "loss" in last:
        summary += f", last loss {last['loss']:.5f}"
    summary += f", {result.samples_per_second:.2f} samples/s"
    if result.final_dir is not None:
        summary += f"; model folder {result.final_dir}"
    print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imageconductor-train", description=__doc__)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
