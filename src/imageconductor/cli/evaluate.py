"""``imageconductor evaluate ...``: motion-control suites, single videos, reports, FID and FVD, and the
synthetic-world benchmark of a model trained there.

    imageconductor evaluate suite --suite object --mode object --out eval/       # generate + score
    imageconductor evaluate video clip.mp4 --trajectories t.json --kind object  # score one video
    imageconductor evaluate report eval/*/run.json --out eval/summary           # compare runs
    imageconductor evaluate fid REAL FAKE --inception inception-2015-12-05.pt
    imageconductor evaluate fvd REAL FAKE --i3d i3d_torchscript.pt --num-frames 16
    imageconductor evaluate synthetic --seeds 10000:10016 --update-card          # the default model's card
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from imageconductor.cli.common import (
    CLIError,
    add_sampling_options,
    add_trajectory_size_option,
    add_weight_options,
    check_scheduler_option,
    check_steps,
    load_image,
    load_pipeline,
    load_trajectory_file,
    mode_argument,
    model_index,
    non_negative_float,
    one_line,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    read_scheduler_config,
    resolve_device,
    resolve_video_size,
    sampling_settings,
    seed_range,
)

__all__ = ["add_parser", "run"]

VIDEO_SUFFIXES = (".mp4", ".gif", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _add_tracker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracking")
    group.add_argument(
        "--tracker", choices=("lk", "cotracker"), default="lk", help="point tracker (default lk)"
    )
    group.add_argument(
        "--cotracker-checkpoint", type=Path, help="local CoTracker checkpoint (--tracker cotracker)"
    )
    group.add_argument("--grid-size", type=positive_int, default=16, help="background grid size (default 16)")
    group.add_argument(
        "--exclusion-radius",
        type=non_negative_float,
        default=None,
        help="background points closer than this to an object trajectory are ignored (default max(H, W)/12)",
    )


def _add_suite_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "suite",
        help="generate one video per trajectory set of a suite and score it",
        description="Generate with an ImageConductorPipeline over an evaluation suite, track the videos, "
        "compute ObjMC/CamMC and background motion, and write results, videos and a report.",
    )
    parser.add_argument(
        "--suite",
        required=True,
        help="camera | object (built-in, 10 each) | a folder of trajectory JSON files | "
        "synthetic-object | synthetic-camera (held-out synthetic clips, see --seeds)",
    )
    parser.add_argument("--mode", type=mode_argument, default=None, help="object, camera, none or a blend")
    parser.add_argument("--label", default=None, help="run name (default SUITE-MODE)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    source = parser.add_argument_group("first frames and prompts")
    source.add_argument("--image", type=Path, help="one first frame for every trajectory set")
    source.add_argument("--prompt", default=None, help="prompt used with --image")
    source.add_argument(
        "--seeds",
        type=seed_range,
        default=range(10_000, 10_010),
        help="synthetic seeds START:STOP (staged frames for built-in suites; clips for synthetic-*)",
    )
    source.add_argument(
        "--texture-scale",
        type=positive_float,
        default=None,
        help="synthetic-* background smoothness (default: the model's synthetic world, else 1)",
    )
    source.add_argument(
        "--motion-scale",
        type=positive_float,
        default=None,
        help="synthetic-* speed multiplier (default: the model's synthetic world, else 1)",
    )
    source.add_argument(
        "--sprite-scale",
        type=positive_float,
        default=None,
        help="synthetic-* sprite size multiplier (default: the model's synthetic world, else 1)",
    )
    add_sampling_options(parser, seed_help="sampling seed for every video (default 0)", seed_default=0)
    add_weight_options(parser)
    parser.add_argument("--no-videos", action="store_true", help="do not keep the generated MP4s")
    parser.add_argument(
        "--no-resume", action="store_true", help="redo trajectories that already have results"
    )
    _add_tracker_options(parser)
    parser.set_defaults(evaluate_handler=_run_suite)


def _add_synthetic_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthetic",
        help="measure a model trained on the synthetic world (the model card's table)",
        description="Held-out synthetic clips: ObjMC and CamMC against trajectory control off and a still "
        "video, disentanglement, camera-free guidance and ablations, with reference rows (the clip, a still "
        "first frame, the clip through the VAE). Prints the Markdown table; --update-card writes it into "
        "the model card.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a model folder trained on the synthetic world (default: the embedded default model)",
    )
    parser.add_argument(
        "--ablation",
        type=_ablation,
        action="append",
        default=[],
        metavar="NAME=DIR[@MODE]",
        help="another model folder measured on the object clips (mode: object unless given; repeatable)",
    )
    parser.add_argument(
        "--seeds", type=seed_range, default=range(10_000, 10_020), help="held-out seeds START:STOP"
    )
    parser.add_argument(
        "--motion-scale",
        type=positive_float,
        default=None,
        help="speeds of the held-out clips (default: the model's own synthetic world)",
    )
    add_sampling_options(
        parser, seed_help="sampling seed for every video (default 0)", seed_default=0, per_request=False
    )
    parser.add_argument(
        "--out", type=Path, default=Path("eval-default-model"), help="output folder (reused on a rerun)"
    )
    parser.add_argument("--table", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument(
        "--update-card",
        action="store_true",
        help="also write the table into the model card (README.md of --model)",
    )
    parser.set_defaults(evaluate_handler=_run_synthetic)


def _add_video_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "video",
        help="score one existing video against its input trajectories",
        description="Track a video from its trajectories' first points and print ObjMC/CamMC and background motion.",
    )
    parser.add_argument("video", type=Path, help="video file (MP4, GIF, ...)")
    parser.add_argument("--trajectories", type=Path, required=True, help="trajectory JSON file")
    add_trajectory_size_option(parser)
    parser.add_argument(
        "--kind",
        choices=("object", "camera"),
        default=None,
        help="metric: object (ObjMC) or camera (CamMC); default from the trajectories' kind",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    _add_tracker_options(parser)
    parser.set_defaults(evaluate_handler=_run_video)


def _add_report_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="one report (tables + plots) comparing several runs",
        description="Combine run.json files written by `evaluate suite` into one Markdown report with plots.",
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run.json files")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--title", default="Motion-control evaluation", help="report title")
    parser.set_defaults(evaluate_handler=_run_report)


def _add_frechet_parsers(subparsers) -> None:
    for name, net_flag, net_help in (
        ("fid", "--inception", "TorchScript Inception file (inception-2015-12-05.pt)"),
        ("fvd", "--i3d", "StyleGAN-V TorchScript I3D file (i3d_torchscript.pt)"),
    ):
        parser = subparsers.add_parser(
            name,
            help=f"{name.upper()} between two folders of videos"
            + (" or images" if name == "fid" else "")
            + " (feature network from a local file)",
        )
        parser.add_argument("real", type=Path, help="reference folder (or an .npz of saved statistics)")
        parser.add_argument("fake", type=Path, help="generated folder")
        parser.add_argument(net_flag, dest="network", type=Path, required=True, help=net_help)
        parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
        parser.add_argument("--batch-size", type=positive_int, default=None, help="feature batch size")
        parser.add_argument(
            "--save-real-stats", type=Path, default=None, help="write the reference statistics (.npz)"
        )
        if name == "fvd":
            parser.add_argument(
                "--num-frames", type=positive_int, default=16, help="frames per clip (default 16)"
            )
        else:
            parser.add_argument(
                "--frame-stride", type=positive_int, default=1, help="use every N-th video frame"
            )
        parser.set_defaults(evaluate_handler=_run_frechet, metric=name)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` command (with its sub-commands) to the main CLI's subparsers."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate generated videos (CamMC, ObjMC, FID, FVD)",
        description="Motion-control evaluation (ObjMC, CamMC, disentanglement) and FID / FVD.",
    )
    commands = parser.add_subparsers(dest="evaluate_command", metavar="WHAT")
    commands.required = True
    _add_suite_parser(commands)
    _add_video_parser(commands)
    _add_report_parser(commands)
    _add_frechet_parsers(commands)
    _add_synthetic_parser(commands)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``evaluate`` sub-command; expected failures become one-line CLI errors."""
    from imageconductor.evaluation.frechet import FeatureNetworkError
    from imageconductor.evaluation.motion_metrics import EvaluationError
    from imageconductor.evaluation.suites import SuiteError
    from imageconductor.video_io import VideoDecodeError

    try:
        return int(args.evaluate_handler(args) or 0)
    except (EvaluationError, SuiteError, FeatureNetworkError, FileNotFoundError, VideoDecodeError) as exc:
        raise CLIError(one_line(exc)) from exc


# --------------------------------------------------------------------------------------------- handlers


def _tracker(args):
    from imageconductor.evaluation.tracking import build_tracker

    try:
        return build_tracker(args.tracker, cotracker_checkpoint=args.cotracker_checkpoint)
    except Exception as exc:  # the curation backend raises its own error types
        raise CLIError(f"cannot build tracker {args.tracker!r}: {exc}") from exc


def _suite_and_cases(args):
    from imageconductor.evaluation.cases import cases_from_image, synthetic_cases, synthetic_clip_suite
    from imageconductor.evaluation.suites import load_suite

    if args.suite in ("synthetic-object", "synthetic-camera"):
        if args.image is not None:
            raise CLIError(
                "--image cannot be used with synthetic-* suites (the clips bring their own frames)"
            )
        kind = args.suite.split("-", 1)[1]
        return synthetic_clip_suite(
            kind,
            args.seeds,
            args.num_frames,
            args.width,
            args.height,
            args.texture_scale,
            args.motion_scale,
            args.sprite_scale,
        )
    suite = load_suite(args.suite)
    if args.image is not None:
        if args.prompt is None:
            raise CLIError("--image needs --prompt")
        return suite, cases_from_image(suite, load_image(args.image), args.prompt)
    if args.prompt is not None:
        raise CLIError("--prompt needs --image (synthetic frames bring their own captions)")
    return suite, synthetic_cases(suite, args.seeds.start, args.width, args.height)


def _run_suite(args) -> int:
    from imageconductor.evaluation.runner import PipelineGenerator, run_suite
    from imageconductor.guidance import format_mode

    output_folder(args.out, "--out")
    args.device = resolve_device(args.device)
    size = resolve_video_size(args)
    from imageconductor.pipelines import synthetic_world

    world = synthetic_world(model_index(args))
    for name, value in world.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.num_frames, args.height, args.width = size.num_frames, size.height, size.width
    suite, cases = _suite_and_cases(args)
    if args.mode is None:
        args.mode = suite.kind
    sampling = sampling_settings(args, size, args.seed)
    tracker = _tracker(args)
    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    result = run_suite(
        suite,
        PipelineGenerator(pipe, sampling),
        cases,
        args.out,
        label=args.label,
        mode=format_mode(sampling.mode),
        tracker=tracker,
        save_videos=not args.no_videos,
        resume=not args.no_resume,
        grid_size=args.grid_size,
        exclusion_radius=args.exclusion_radius,
    )
    print(json.dumps(result.summary(), indent=1))
    return 0


def _ablation(text: str):
    """argparse type: ``NAME=DIR[@MODE]`` as an `Ablation`."""
    from imageconductor.evaluation.synthetic_benchmark import Ablation

    name, sep, target = text.partition("=")
    folder, _, mode = target.partition("@")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR or NAME=DIR@MODE, got {text!r}")
    return Ablation(name, Path(folder), mode or "object")


def card_command(args: argparse.Namespace) -> str:
    """The command that measured the card's table, with this machine's folders left out: options left at
    their defaults are omitted and ablation folders become ``DIR1``, ``DIR2``, ... (their modes kept)."""
    commands = argparse.ArgumentParser().add_subparsers()
    _add_synthetic_parser(commands)
    defaults = commands.choices["synthetic"]
    parts = ["imageconductor evaluate synthetic", f"--seeds {args.seeds.start}:{args.seeds.stop}"]
    for name in ("motion_scale", "steps", "guidance_scale", "motion_guidance", "seed"):
        value = getattr(args, name)
        if value != defaults.get_default(name):
            parts.append(f"--{name.replace('_', '-')} {value:g}")
    if args.scheduler != defaults.get_default("scheduler"):
        parts.append(f"--scheduler {args.scheduler}")
    for number, ablation in enumerate(args.ablation, start=1):
        mode = "" if ablation.mode == "object" else f"@{ablation.mode}"
        parts.append(f"--ablation {ablation.name}=DIR{number}{mode}")
    parts.append("--update-card")
    return " ".join(parts)


def _run_synthetic(args) -> int:
    from imageconductor.evaluation.synthetic_benchmark import run_synthetic_benchmark
    from imageconductor.pipelines import SamplingSettings, default_model_path
    from imageconductor.training.make_default import write_card_metrics

    output_folder(args.out, "--out")
    if args.table is not None:
        output_file(args.table, "--table")
    model = args.model or default_model_path()
    if model is None or not (Path(model) / "model_index.json").is_file():
        raise CLIError(f"{model} is not a saved model folder (no model_index.json)")
    for ablation in args.ablation:
        if not (ablation.folder / "model_index.json").is_file():
            raise CLIError(f"ablation {ablation.name}: {ablation.folder} is not a saved model folder")
    config = read_scheduler_config(Path(model))
    check_steps(args.steps, config)
    scheduler = check_scheduler_option(args.scheduler, config)
    try:
        sampling = SamplingSettings(
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            motion_guidance_scale=args.motion_guidance,
            seed=args.seed,
            scheduler=scheduler,
        )
    except ValueError as exc:
        raise CLIError(one_line(exc)) from exc

    def show(summary: dict) -> None:
        print(json.dumps(summary, default=str), flush=True)

    result = run_synthetic_benchmark(
        model, args.seeds, sampling, args.out, args.ablation, args.motion_scale, on_row=show
    )
    table = result.table()
    print(table)
    if args.table:
        args.table.write_text(table)
    if args.update_card:
        write_card_metrics(model, table, card_command(args))
    return 0


def _run_video(args) -> int:
    from imageconductor.evaluation.runner import evaluate_video
    from imageconductor.video_io import probe, read_video

    if args.json is not None:
        output_file(args.json, "--json")
    info = probe(args.video)
    trajectories = load_trajectory_file(args.trajectories, info.width, info.height, args.trajectory_size)
    frames, _ = read_video(args.video)
    kind = args.kind or (trajectories.kind if trajectories.kind in ("object", "camera") else "object")
    result = evaluate_video(
        frames, trajectories, kind, args.video.stem, _tracker(args), args.grid_size, args.exclusion_radius
    )
    summary = {
        "video": str(args.video),
        "metric": "ObjMC" if kind == "object" else "CamMC",
        "motion_error_px": result.motion_error_px,
        "visible_fraction": result.visible_fraction,
        "trajectory_path_px": result.trajectory_path_px,
        "background_path_px": result.background_path_px,
        "background_fraction": result.background_fraction,
    }
    print(json.dumps(summary, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_dict(), indent=1))
    return 0


def _run_report(args) -> int:
    from imageconductor.evaluation.report import write_report
    from imageconductor.evaluation.results import SuiteRunResult

    output_folder(args.out, "--out")
    runs = []
    for path in args.runs:
        if not path.is_file():
            raise CLIError(f"run file not found: {path}")
        try:
            runs.append(SuiteRunResult.load(path))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CLIError(f"{path} is not a run.json written by `evaluate suite`: {exc}") from exc
    files = write_report(runs, args.out, title=args.title)
    print(f"wrote {files.markdown}", file=sys.stderr)
    return 0


def _media_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise CLIError(f"folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        raise CLIError(f"no {'/'.join(suffixes)} files in {folder}")
    return files


def _frames_of(folder: Path, stride: int) -> Iterator:
    """Frames of every image and video under ``folder`` (videos: every ``stride``-th frame)."""
    import numpy as np

    from imageconductor.video_io import read_video

    for path in _media_files(folder, VIDEO_SUFFIXES + IMAGE_SUFFIXES):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield np.asarray(load_image(path))
        else:
            yield from read_video(path)[0][::stride]


def _clips_of(folder: Path, num_frames: int) -> Iterator:
    from imageconductor.video_io import read_video

    for path in _media_files(folder, VIDEO_SUFFIXES):
        frames, _ = read_video(path, max_frames=num_frames)
        if len(frames) < num_frames:
            raise CLIError(f"{path} has {len(frames)} frames; --num-frames is {num_frames}")
        yield frames


def _run_frechet(args) -> int:
    from imageconductor.evaluation.frechet import (
        FeatureStatistics,
        I3DFeatureExtractor,
        InceptionFeatureExtractor,
        feature_statistics,
        frechet_distance,
    )

    args.device = resolve_device(args.device)
    if args.save_real_stats is not None:
        output_file(args.save_real_stats, "--save-real-stats")
    if args.metric == "fid":
        extractor = InceptionFeatureExtractor(args.network, args.device, args.batch_size or 32)

        def features(folder):
            return extractor(_frames_of(folder, max(args.frame_stride, 1)))
    else:
        extractor = I3DFeatureExtractor(args.network, args.device, args.batch_size or 8)

        def features(folder):
            return extractor(_clips_of(folder, args.num_frames))

    if args.real.suffix == ".npz":
        real = FeatureStatistics.load(args.real)
    else:
        real = feature_statistics(features(args.real))
        if args.save_real_stats is not None:
            real.save(args.save_real_stats)
    fake = feature_statistics(features(args.fake))
    value = frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
    print(json.dumps({args.metric: value, "real_count": real.count, "fake_count": fake.count}))
    return 0
