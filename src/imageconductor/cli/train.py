"""``imageconductor train``: one training stage from a config, or the whole embedded default model.

    imageconductor train stage --config configs/train_object.yaml [--resume] [--set key=value ...]
    imageconductor train default --out src/imageconductor/assets/default_model

Multi-GPU or mixed precision: ``accelerate launch -m imageconductor.cli train stage --config ...``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from imageconductor.cli.common import CLIError, one_line, output_folder, positive_float

__all__ = ["add_parser", "run_default", "run_examples", "run_stage"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` command with its ``stage`` and ``default`` actions."""
    parser = subparsers.add_parser(
        "train",
        help="train a stage from a config, or rebuild the embedded default model",
        description="Train one stage (vae, base, controlnet, camera, object) from a YAML/JSON config, or "
        "build the embedded default model: all five stages on the synthetic world, seeded, resumable. "
        "Multi-GPU or mixed precision: accelerate launch -m imageconductor.cli train stage --config ...",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    stage = actions.add_parser(
        "stage",
        help="train one stage from a config",
        description="Train one stage from a config file; checkpoints resume with --resume.",
    )
    stage.add_argument("--config", required=True, type=Path, help="training config (.yaml/.yml/.json)")
    stage.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from a checkpoint: 'latest' (default when given without a value), 'auto' (latest if "
        "any, else start fresh) or a checkpoint folder",
    )
    stage.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set max_steps=100 --set optim.learning_rate=3e-4 (repeatable)",
    )
    stage.add_argument("--no-export", action="store_true", help="do not write the final model folder")
    stage.set_defaults(handler=run_stage)

    default = actions.add_parser(
        "default",
        help="rebuild the embedded default model (all five stages, seeded)",
        description="Run the stages vae -> base -> controlnet -> camera -> object of a plan on the synthetic "
        "world and write the model folder with its card. A rerun resumes: finished stages are skipped and "
        "an unfinished one continues from its last checkpoint. --export-stages and --resume-from build it in "
        "parts: finished stages as files to commit, and a later build that starts after them.",
    )
    default.add_argument("--out", required=True, type=Path, help="the model folder to write")
    default.add_argument(
        "--plan", type=Path, help="a plan YAML (default: the built-in plan, see configs/default_model.yaml)"
    )
    default.add_argument(
        "--profile",
        choices=("default", "smoke"),
        default="default",
        help="built-in plan to use when --plan is not given ('smoke': tiny, seconds)",
    )
    default.add_argument(
        "--work-dir", type=Path, help="where stage runs and checkpoints go (default: <out>-work)"
    )
    default.add_argument(
        "--steps-scale", type=positive_float, default=1.0, help="multiply every stage's max_steps (default 1)"
    )
    default.add_argument(
        "--until", help="stop after this stage: vae, base, controlnet, camera or object (default: all five)"
    )
    default.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="change one plan value, e.g. stages.object.loss.ortho_weight=0 (repeatable)",
    )
    default.add_argument(
        "--export-stages",
        type=Path,
        metavar="FOLDER",
        help="write every finished stage to FOLDER/<stage>/ as soon as it is finished (its model, settings, "
        "time and losses; no checkpoints): files to commit and build on with --resume-from",
    )
    default.add_argument(
        "--resume-from",
        type=Path,
        metavar="FOLDER",
        help="take the stages exported to FOLDER (--export-stages) instead of training them, after checking "
        "them against the plan, and start after the last one",
    )
    default.set_defaults(handler=run_default)

    examples = actions.add_parser(
        "examples",
        help="write the example inputs of a model trained on the synthetic world",
        description="Write the example first frames, trajectory files and prompts (object and camera) from "
        "held-out clips of a model's synthetic world, at 384x256.",
    )
    examples.add_argument("--model", type=Path, help="the model folder (default: the embedded default model)")
    examples.add_argument("--out", type=Path, help="folder to write (default: the package's assets/examples)")
    examples.set_defaults(handler=run_examples)
    return parser


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_stage(args: argparse.Namespace) -> int:
    """Train one stage; prints a one-line summary."""
    from imageconductor.training.config import ConfigError, TrainingConfig
    from imageconductor.training.run import run_training

    try:
        config = TrainingConfig.load(args.config, args.overrides)
    except ConfigError as error:
        raise CLIError(one_line(error)) from error
    _log_to_stderr()
    try:
        result = run_training(config, resume=args.resume, export=not args.no_export)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(one_line(error)) from error
    except FloatingPointError as error:
        raise CLIError(f"training diverged: {one_line(error)}") from error
    last = result.history[-1] if result.history else {}
    summary = f"stage {config.stage}: {len(result.history)} step(s) run"
    if "loss" in last:
        summary += f", last loss {last['loss']:.5f}"
    summary += f", {result.samples_per_second:.2f} samples/s"
    if result.final_dir is not None:
        summary += f"; model folder {result.final_dir}"
    print(summary)
    return 0


def run_default(args: argparse.Namespace) -> int:
    """Build the default model; every override is checked before any training starts."""
    from imageconductor.training.make_default import (
        STAGE_ORDER,
        StageSetupError,
        load_plan,
        make_default,
        plan_with_overrides,
        stage_configs,
    )

    if args.until is not None and args.until not in STAGE_ORDER:
        raise CLIError(f"--until must be one of {', '.join(STAGE_ORDER)}, got {args.until!r}")
    output_folder(args.out, "--out")
    if args.work_dir is not None:
        output_folder(args.work_dir, "--work-dir")
    if args.export_stages is not None:
        output_folder(args.export_stages, "--export-stages")
    if args.resume_from is not None and not args.resume_from.is_dir():
        raise CLIError(f"--resume-from: {args.resume_from} is not a folder")
    try:
        plan = plan_with_overrides(load_plan(args.plan, args.profile), args.overrides)
        stage_configs(plan, Path("check"))
    except (OSError, ValueError) as exc:  # ConfigError is a ValueError
        raise CLIError(one_line(exc)) from exc
    _log_to_stderr()
    try:
        out = make_default(
            args.out,
            plan,
            args.work_dir,
            args.steps_scale,
            args.until,
            resume_from=args.resume_from,
            export_to=args.export_stages,
        )
    except StageSetupError as exc:  # raised before anything is trained
        raise CLIError(one_line(exc)) from exc
    print(f"default model written to {out}")
    return 0


def run_examples(args: argparse.Namespace) -> int:
    """Write the example inputs of a model."""
    from imageconductor.evaluation.example_inputs import write_example_inputs
    from imageconductor.pipelines import DEFAULT_MODEL_DIR, default_model_path, read_model_index

    model = args.model or default_model_path()
    try:
        index = read_model_index(model) if model is not None else {}
    except (OSError, ValueError) as exc:
        raise CLIError(one_line(exc)) from exc
    out = output_folder(args.out or DEFAULT_MODEL_DIR.parent / "examples", "--out")
    for line in write_example_inputs(out, index):
        print(line)
    return 0
