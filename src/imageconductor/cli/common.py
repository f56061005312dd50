"""What every command shares: the one-line error, argument types, the weight options, pipeline loading,
the sampling options and the video size they default to.

Expected failures raise :class:`CLIError`; `imageconductor.cli.main` prints it as one line
``imageconductor: error: ...`` and exits with status 2. Heavy libraries (torch, diffusers) are imported
inside the functions that need them: importing the pipeline takes about 8 s on a 2-core machine, against
0.1 s for ``imageconductor --help`` without it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

    from imageconductor.guidance import AdapterSelection
    from imageconductor.pipelines import ImageConductorPipeline, SamplingSettings, VideoSize
    from imageconductor.trajectories import TrajectorySet

__all__ = [
    "CLIError",
    "add_sampling_options",
    "add_video_size_options",
    "add_weight_options",
    "finite_float",
    "frame_size",
    "load_image",
    "load_pipeline",
    "load_trajectory_file",
    "mode_argument",
    "non_negative_float",
    "one_line",
    "positive_int",
    "resolve_video_size",
    "sampling_settings",
    "seed_range",
    "weights_folder",
]


class CLIError(Exception):
    """An expected failure: reported as one line on stderr, exit status 2."""


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An exception's message folded onto one line and cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------- argument types
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def frame_size(text: str) -> tuple[int, int]:
    """argparse type: ``WIDTHxHEIGHT`` such as ``384x256``, as ``(width, height)``."""
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 384x256, got {text!r}") from None
    if not sep or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 384x256, got {text!r}")
    return size


def seed_range(text: str) -> range:
    """argparse type: ``START:STOP`` (or ``START`` for ten seeds) as a range."""
    start, sep, stop = text.partition(":")
    try:
        seeds = range(int(start), int(stop)) if sep else range(int(start), int(start) + 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP or START, got {text!r}") from None
    if len(seeds) == 0:
        raise argparse.ArgumentTypeError(f"the seed range {text!r} is empty")
    return seeds


def mode_argument(text: str) -> AdapterSelection:
    """argparse type: the adapter selection (`imageconductor.guidance.parse_mode`)."""
    from imageconductor.guidance import parse_mode

    try:
        return parse_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: {exc} (use object, camera, none or a blend like 'camera=1,object=0.5')"
        ) from None


# --------------------------------------------------------------------------------------------- weights
_OFFICIAL_FLAGS = {
    "--pretrained-model-path": "pretrained_model_path",
    "--unet": "unet",
    "--image-controlnet": "image_controlnet",
    "--flow-controlnet": "flow_controlnet",
}


def add_weight_options(parser: argparse.ArgumentParser) -> None:
    """``--weights-dir`` or the four official-file options (neither: the embedded default model), and
    ``--device``."""
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
    weights.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def weights_folder(args: argparse.Namespace) -> Path | None:
    """The save_pretrained folder the weight options select (``--weights-dir`` or the embedded default),
    or None when the official files are given. CLIError for conflicting or incomplete options."""
    from imageconductor.pipelines import default_model_path

    given = [flag for flag, name in _OFFICIAL_FLAGS.items() if getattr(args, name) is not None]
    if args.weights_dir is not None and given:
        raise CLIError(f"pass either --weights-dir or the official files, not both (got {', '.join(given)})")
    if given:
        missing = [flag for flag, name in _OFFICIAL_FLAGS.items() if getattr(args, name) is None]
        if missing:
            raise CLIError(f"official weights need all four options; missing {', '.join(missing)}")
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


def model_index(args: argparse.Namespace) -> dict[str, Any]:
    """The selected model's pipeline settings (its ``model_index.json``; ``{}`` for the official files),
    read without loading weights."""
    from imageconductor.pipelines import read_model_index

    folder = weights_folder(args)
    if folder is None:
        return {}
    try:
        return read_model_index(folder)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {folder / 'model_index.json'}: {one_line(exc)}") from exc


def load_pipeline(args: argparse.Namespace) -> ImageConductorPipeline:
    """The ImageConductorPipeline the weight options select (see `add_weight_options`), moved to
    ``args.device`` (default: cuda if available, else cpu)."""
    import torch

    from imageconductor.pipelines import ImageConductorPipeline

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
        raise CLIError(f"cannot load weights: {one_line(exc)}") from exc
    try:
        return pipe.to(device)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(f"cannot use device {device!r}: {one_line(exc)}") from exc


# ----------------------------------------------------------------------------------- sampling options
def add_video_size_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--num-frames/--height/--width``; unset values are the model's native size."""
    parser.add_argument("--num-frames", type=positive_int, help="frames (default: the model's native count)")
    parser.add_argument("--height", type=positive_int, help="height in pixels (default: the model's native)")
    parser.add_argument("--width", type=positive_int, help="width in pixels (default: the model's native)")


def add_sampling_options(
    parser: argparse.ArgumentParser, seed_help: str, seed_default: int | None, per_request: bool = True
) -> None:
    """The sampling options of `SamplingSettings`: steps, guidance scales and seed, and with
    ``per_request`` also camera-free guidance, the flow scale and the video size."""
    group = parser.add_argument_group("sampling")
    group.add_argument("--steps", type=positive_int, default=25, help="DDIM steps (default 25)")
    group.add_argument(
        "--guidance-scale",
        type=finite_float,
        default=7.5,
        help="classifier-free guidance λ_cfg (default 7.5, the released code's; the paper states 8.5)",
    )
    group.add_argument(
        "--motion-guidance",
        type=non_negative_float,
        default=1.0,
        help="motion guidance: extrapolate the trajectories' effect against trajectory control off, as CFG "
        "does the prompt's (default 1 = off, as released; 2 follows the trajectories more strongly; one more "
        "batch row)",
    )
    group.add_argument("--seed", type=int, default=seed_default, help=seed_help)
    if not per_request:
        return
    group.add_argument(
        "--camera-free-guidance",
        type=finite_float,
        default=None,
        help="λ_traj of camera-free guidance (paper Eq. 5); off by default",
    )
    group.add_argument(
        "--flow-scale",
        type=finite_float,
        default=1.0,
        help="factor on the motion ControlNet's residuals (default 1; 0 = trajectory control off)",
    )
    add_video_size_options(group)


def resolve_video_size(args: argparse.Namespace) -> VideoSize:
    """The video size asked for: ``--num-frames/--height/--width`` where given, else the selected model's
    native size; CLIError unless height and width are multiples of the model's VAE factor."""
    from imageconductor.pipelines import VideoSize

    index = model_index(args)
    native = VideoSize.native(index)
    size = VideoSize(
        num_frames=args.num_frames or native.num_frames,
        height=args.height or native.height,
        width=args.width or native.width,
    )
    factor = vae_scale_factor(args)
    if size.height % factor or size.width % factor:
        raise CLIError(
            f"--height and --width must be multiples of {factor} (the model's VAE factor), "
            f"got {size.height} and {size.width}"
        )
    if size.num_frames < 2:
        raise CLIError(f"--num-frames must be at least 2, got {size.num_frames}")
    return size


def vae_scale_factor(args: argparse.Namespace) -> int:
    """The selected model's VAE downsampling factor, read from its VAE config without loading weights."""
    folder = weights_folder(args)
    root = args.pretrained_model_path if folder is None else folder
    config_path = Path(root) / "vae" / "config.json"
    from imageconductor.models import vae_scale_factor as factor_of

    try:
        return factor_of(json.loads(config_path.read_text())["block_out_channels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"cannot read the VAE config {config_path}: {one_line(exc)}") from exc


def sampling_settings(args: argparse.Namespace, size: VideoSize, seed: int) -> SamplingSettings:
    """The `SamplingSettings` the sampling options ask for, at ``size``."""
    from imageconductor.pipelines import SamplingSettings

    if args.mode == "none" and args.camera_free_guidance is not None:
        raise CLIError("--camera-free-guidance needs --mode object, camera or a blend (not none)")
    return SamplingSettings(
        mode=args.mode,
        num_frames=size.num_frames,
        height=size.height,
        width=size.width,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        camera_free_guidance=args.camera_free_guidance,
        motion_guidance_scale=args.motion_guidance,
        flow_conditioning_scale=args.flow_scale,
        seed=seed,
    )


# ------------------------------------------------------------------------------------------ input files
def load_image(path: Path) -> Image:
    """The RGB PIL image at ``path``; CLIError when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise CLIError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CLIError(f"cannot read image {path}: {one_line(exc)}") from exc


def load_trajectory_file(path: Path, width: int, height: int) -> TrajectorySet:
    """The trajectory file at ``path`` in the ``width x height`` frame (see
    `imageconductor.pipelines.load_trajectory_set`); CLIError naming what is wrong."""
    from imageconductor.pipelines import load_trajectory_set

    if not path.is_file():
        raise CLIError(f"trajectory file not found: {path}")
    try:
        return load_trajectory_set(path, width, height)
    except (ValueError, OSError) as exc:
        raise CLIError(f"bad trajectory file {path}: {one_line(exc)}") from exc
