"""Command line: ``imageconductor <command> ...``.

``generate`` lives here. Other commands are registered in :data:`SUBCOMMANDS` (name -> module path,
one-line help); such a module provides ``add_parser(subparsers)``, which adds a sub-parser of that
name, and ``run(args) -> int``. A module is imported only when its command is run (or its ``--help``
asked for), so ``imageconductor generate`` never pays for training or curation imports.

Expected failures (missing weights, unreadable image, bad trajectory file, bad arguments) print one
line ``imageconductor: error: ...`` to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import math
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SUBCOMMANDS",
    "CLIError",
    "add_weight_options",
    "build_parser",
    "fill_frame_size",
    "load_image",
    "load_pipeline",
    "main",
    "parse_mode",
    "positive_int",
]

#: Commands provided by other packages: name -> (module with add_parser/run, one-line help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "curate": ("imageconductor.curation.cli", "curate raw videos into trajectory-annotated training shards"),
    "train": ("imageconductor.training.cli", "train the motion ControlNet and its camera/object LoRA"),
    "evaluate": ("imageconductor.evaluation.cli", "evaluate generated videos (CamMC, ObjMC, FID, FVD)"),
    "trajectories": ("imageconductor.trajectories.cli", "check, convert and create trajectory files"),
}

MODES = ("object", "camera", "none")

#: Video size used when neither the command line nor the model folder sets one (the released model's).
FALLBACK_NUM_FRAMES, FALLBACK_HEIGHT, FALLBACK_WIDTH = 16, 256, 384


class CLIError(Exception):
    """An expected failure: reported as one line on stderr, exit status 2."""


# ---------------------------------------------------------------------------------------------- parser
def _add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help="animate an image along drawn trajectories",
        description=(
            "Generate a video from a first frame, a prompt and trajectories. Writes an H.264 MP4, "
            "optionally a GIF, and a side-by-side video (generated | generated with the trajectories drawn)."
        ),
    )
    parser.add_argument("--image", required=True, type=Path, help="first frame (any image Pillow reads)")
    parser.add_argument("--prompt", required=True, help="text prompt")
    parser.add_argument("--negative-prompt", default=None, help="negative prompt (default: empty)")
    parser.add_argument(
        "--trajectories",
        required=True,
        type=Path,
        help="trajectory JSON: the official list of tracks ([[x, y], ...] in pixels of the model frame) "
        "or the richer format with image_size / kinds / strengths",
    )
    parser.add_argument(
        "--mode",
        default=None,
        type=parse_mode,
        help="flow adapter: object, camera, none, or a blend like 'camera=1,object=0.5' "
        "(default: camera if every track is a camera track, else object)",
    )
    add_weight_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="output .mp4 path")
    parser.add_argument("--gif", action="store_true", help="also write a GIF next to the MP4")
    parser.add_argument("--no-side-by-side", action="store_true", help="skip the side-by-side video")
    parser.add_argument("--steps", type=positive_int, default=25, help="DDIM steps (default 25)")
    parser.add_argument(
        "--guidance-scale", type=float, default=7.5, help="classifier-free guidance (default 7.5)"
    )
    parser.add_argument(
        "--camera-free-guidance",
        type=float,
        default=None,
        help="λ_traj of camera-free guidance (paper Eq. 5); off by default",
    )
    add_motion_guidance_option(parser)
    parser.add_argument("--flow-scale", type=float, default=1.0, help=FLOW_SCALE_HELP)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    add_frame_size_options(parser)
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second of the outputs (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.set_defaults(handler=run_generate)
    return parser


def add_weight_options(parser: argparse.ArgumentParser) -> None:
    """``--weights-dir`` or the four official-file options (neither: the embedded default model)."""
    weights = parser.add_argument_group(
        "weights",
        "a save_pretrained folder (--weights-dir), or the official files (all four options); "
        "neither: the embedded default model",
    )
    weights.add_argument(
        "--weights-dir", type=Path, help="folder written by ImageConductorPipeline.save_pretrained"
    )
    weights.add_argument("--pretrained-model-path", type=Path, help="Stable Diffusion 1.5 diffusers folder")
    weights.add_argument("--unet", type=Path, help="official unet.ckpt")
    weights.add_argument("--image-controlnet", type=Path, help="official image_controlnet.ckpt")
    weights.add_argument("--flow-controlnet", type=Path, help="official flow ControlNet .ckpt (with LoRA)")


def add_frame_size_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--num-frames/--height/--width``; unset values come from the model (see `fill_frame_size`)."""
    native = "default: the model's native size, else {}"
    parser.add_argument(
        "--num-frames",
        type=positive_int,
        default=None,
        help="frames (" + native.format(FALLBACK_NUM_FRAMES) + ")",
    )
    parser.add_argument(
        "--height",
        type=positive_int,
        default=None,
        help="height in pixels (" + native.format(FALLBACK_HEIGHT) + ")",
    )
    parser.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help="width in pixels (" + native.format(FALLBACK_WIDTH) + ")",
    )


#: Help of ``--flow-scale`` (generate and evaluate).
FLOW_SCALE_HELP = "factor on the motion ControlNet's residuals (default 1; 0 = trajectory control off)"
MOTION_GUIDANCE_HELP = (
    "motion guidance: extrapolate the trajectories' effect against trajectory control off, like CFG does "
    "the prompt's (default 1 = off, as released; e.g. 2 follows the trajectories more strongly; one more "
    "batch row)"
)


def parse_mode(text: str) -> str | dict[str, float]:
    if text in MODES:
        return text
    weights: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in ("camera", "object"):
            raise argparse.ArgumentTypeError(
                f"invalid mode {text!r}: use object, camera, none or a blend like 'camera=1,object=0.5'"
            )
        try:
            weights[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid weight {value!r} for adapter {name!r}") from None
    return weights


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_motion_guidance_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--motion-guidance`` (``motion_guidance_scale``: a finite number >= 0, default 1 = off)."""
    parser.add_argument("--motion-guidance", type=non_negative_float, default=1.0, help=MOTION_GUIDANCE_HELP)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser(requested: str | None = None) -> argparse.ArgumentParser:
    """The ``imageconductor`` parser. Only the module of the ``requested`` extra command is imported;
    the others appear in ``--help`` by name and help line."""
    parser = argparse.ArgumentParser(
        prog="imageconductor",
        description="Image Conductor: precise camera and object motion control for image-to-video generation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_generate_parser(subparsers)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name != requested:
            subparsers.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise CLIError(f"command {name!r} is not available in this installation ({exc})") from exc
        module.add_parser(subparsers)
        subparsers.choices[name].set_defaults(handler=module.run)
    return parser


# -------------------------------------------------------------------------------------------- generate
def load_image(path: Path):
    """The RGB PIL image at ``path``; CLIError when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise CLIError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CLIError(f"cannot read image {path}: {exc}") from exc


def _load_trajectory_set(path: Path, width: int, height: int):
    from imageconductor.pipelines.image_conductor import load_trajectory_set

    if not path.is_file():
        raise CLIError(f"trajectory file not found: {path}")
    try:
        return load_trajectory_set(path, width, height)
    except (ValueError, OSError) as exc:
        raise CLIError(f"bad trajectory file {path}: {_one_line(exc)}") from exc


def _official_files(args: argparse.Namespace) -> dict[str, Path | None]:
    return {
        "--pretrained-model-path": args.pretrained_model_path,
        "--unet": args.unet,
        "--image-controlnet": args.image_controlnet,
        "--flow-controlnet": args.flow_controlnet,
    }


def weights_folder(args: argparse.Namespace) -> Path | None:
    """The save_pretrained folder the weight options select (``--weights-dir`` or the embedded default),
    or None when the official files are given. CLIError for conflicting or incomplete options."""
    from imageconductor.pipelines import default_model_path

    official = _official_files(args)
    given = [flag for flag, value in official.items() if value is not None]
    if args.weights_dir is not None and given:
        raise CLIError(f"pass either --weights-dir or the official files, not both (got {', '.join(given)})")
    if given:
        missing_flags = [flag for flag, value in official.items() if value is None]
        if missing_flags:
            raise CLIError(f"official weights need all four options; missing {', '.join(missing_flags)}")
        return None
    folder = args.weights_dir if args.weights_dir is not None else default_model_path()
    if folder is None:
        raise CLIError(
            "no embedded default model is installed; pass --weights-dir (a save_pretrained folder) "
            "or --pretrained-model-path with --unet, --image-controlnet and --flow-controlnet"
        )
    if not (Path(folder) / "model_index.json").is_file():
        raise CLIError(f"--weights-dir {folder} is not a saved pipeline folder (no model_index.json)")
    return Path(folder)


def fill_frame_size(args: argparse.Namespace) -> None:
    """Set unset ``num_frames`` / ``height`` / ``width`` from the model folder's
    ``imageconductor_model.json`` (its native size), else from the released model's 16 x 256 x 384; an
    unset ``texture_scale`` or ``motion_scale`` (synthetic world the model was trained on) likewise, else
    1."""
    from imageconductor.pipelines import MODEL_INFO_FILE, read_model_info

    native: dict[str, Any] = {}
    folder = weights_folder(args)
    if folder is not None:
        try:
            native = read_model_info(folder)
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot read {folder / MODEL_INFO_FILE}: {_one_line(exc)}") from exc
    fallback = {"num_frames": FALLBACK_NUM_FRAMES, "height": FALLBACK_HEIGHT, "width": FALLBACK_WIDTH}
    for name, value in fallback.items():
        if getattr(args, name, None) is None:
            setattr(args, name, int(native.get(name, value)))
    for name in ("texture_scale", "motion_scale"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, float(native.get(name, 1.0)))


def load_pipeline(args: argparse.Namespace):
    """The ImageConductorPipeline the weight options select (see `add_weight_options`), moved to
    ``args.device`` (default: cuda if available, else cpu)."""
    import torch

    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    folder = weights_folder(args)
    device = getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"loading weights ({device}) ...", file=sys.stderr)
    try:
        if folder is None:
            pipe = ImageConductorPipeline.from_official(
                args.pretrained_model_path,
                unet_path=args.unet,
                image_controlnet_path=args.image_controlnet,
                flow_controlnet_path=args.flow_controlnet,
            )
        else:
            pipe = ImageConductorPipeline.from_pretrained(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CLIError(f"cannot load weights: {_one_line(exc)}") from exc
    try:
        return pipe.to(device)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(f"cannot use device {device!r}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 600 else text[:597] + "..."


def output_paths(out: Path) -> dict[str, Path]:
    """Files ``generate`` writes for ``--out``: the MP4, its GIF and the side-by-side MP4 / GIF."""
    base = out.with_suffix("")
    return {
        "mp4": out,
        "gif": base.with_suffix(".gif"),
        "side_by_side": base.parent / f"{base.name}.side_by_side.mp4",
        "side_by_side_gif": base.parent / f"{base.name}.side_by_side.gif",
    }


def run_generate(args: argparse.Namespace) -> int:
    """``imageconductor generate``: load weights, sample, write the MP4 (+ GIF) and the side-by-side video."""
    import numpy as np
    import torch

    from imageconductor.overlay import draw_trajectories, side_by_side
    from imageconductor.pipelines.image_conductor import output_to_uint8
    from imageconductor.trajectories import resample_track
    from imageconductor.video_io import write_gif, write_mp4

    if args.out.suffix.lower() != ".mp4":
        raise CLIError(f"--out must end in .mp4, got {args.out}")
    fill_frame_size(args)
    if args.height % 8 or args.width % 8:
        raise CLIError(f"--height and --width must be multiples of 8, got {args.height} and {args.width}")
    if args.num_frames < 2:
        raise CLIError(f"--num-frames must be at least 2, got {args.num_frames}")
    if args.mode == "none" and args.camera_free_guidance is not None:
        raise CLIError("--camera-free-guidance needs --mode object, camera or a blend (not none)")
    image = load_image(args.image)
    trajectory_set = _load_trajectory_set(args.trajectories, args.width, args.height)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    started = time.perf_counter()
    pipe = load_pipeline(args)
    device = pipe.device
    print(f"generating with seed {seed} ...", file=sys.stderr)
    try:
        result = pipe(
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            image=image,
            trajectories=trajectory_set,
            mode=args.mode,
            num_frames=args.num_frames,
            height=args.height,
            width=args.width,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            camera_free_guidance=args.camera_free_guidance,
            motion_guidance_scale=args.motion_guidance,
            flow_conditioning_scale=args.flow_scale,
            generator=torch.Generator(device=device).manual_seed(seed),
            output_type="pt",
        )
    except ValueError as exc:
        raise CLIError(_one_line(exc)) from exc
    frames = output_to_uint8(result.frames)

    paths = output_paths(args.out)
    write_mp4(frames, paths["mp4"], fps=args.fps)
    written = [paths["mp4"]]
    if args.gif:
        written.append(write_gif(frames, paths["gif"], fps=args.fps))
    if not args.no_side_by_side:
        tracks = [np.asarray(resample_track(track, args.num_frames)) for track in trajectory_set.tracks]
        panel = side_by_side(frames, draw_trajectories(frames, tracks))
        written.append(write_mp4(panel, paths["side_by_side"], fps=args.fps))
        if args.gif:
            written.append(write_gif(panel, paths["side_by_side_gif"], fps=args.fps))
    elapsed = time.perf_counter() - started
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    print(f"done in {elapsed:.1f} s", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imageconductor`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    requested = next((arg for arg in argv if not arg.startswith("-")), None)
    try:
        parser = build_parser(requested if requested in SUBCOMMANDS else None)
        args = parser.parse_args(argv)
        handler: Any = args.handler
        return int(handler(args) or 0)
    except CLIError as exc:
        print(f"imageconductor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imageconductor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
