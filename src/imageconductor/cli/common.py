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
    import torch
    from PIL.Image import Image

    from imageconductor.guidance import AdapterSelection
    from imageconductor.pipelines import ImageConductorPipeline, SamplingSettings, VideoSize
    from imageconductor.trajectories import TrajectorySet

__all__ = [
    "SCHEDULER_CHOICES",
    "CLIError",
    "add_sampling_options",
    "add_scheduler_option",
    "add_trajectory_size_option",
    "add_video_size_options",
    "add_weight_options",
    "check_memory",
    "check_scheduler_option",
    "check_steps",
    "finite_float",
    "frame_size",
    "load_image",
    "load_pipeline",
    "load_trajectory_file",
    "lora_argument",
    "mode_argument",
    "non_negative_float",
    "official_files",
    "one_line",
    "output_file",
    "output_folder",
    "positive_float",
    "positive_int",
    "resolve_device",
    "resolve_video_size",
    "sampling_settings",
    "scheduler_argument",
    "scheduler_config",
    "seed_range",
    "seed_value",
    "weights_folder",
]


class CLIError(Exception):
    """An expected failure: reported as one line on stderr, exit status 2."""


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An exception's message folded onto one line and cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------- argument types
def _whole_number(text: str, low: int, high: int | None, expected: str) -> int:
    """``text`` as an int with ``low <= value`` (and ``value < high`` when given), else the argparse error
    ``expected <expected>, got '<text>'``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low or (high is not None and value >= high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _whole_number(text, 1, None, "a positive integer")


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def seed_value(text: str) -> int:
    """argparse type: a seed, a whole number with 0 <= seed < 2**63."""
    return _whole_number(text, 0, 2**63, "a seed with 0 <= seed < 2**63")


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


#: The names of `imageconductor.pipelines.schedulers.SCHEDULER_NAMES`, here so that parsing the command
#: line imports no torch (a test keeps the two equal).
SCHEDULER_CHOICES = ("ddim", "dpm++2m", "dpm++2m-karras", "unipc", "euler", "euler-a")


def scheduler_argument(text: str) -> str:
    """argparse type: a scheduler name of `SCHEDULER_CHOICES` (case ignored)."""
    name = text.strip().lower()
    if name not in SCHEDULER_CHOICES:
        raise argparse.ArgumentTypeError(
            f"unknown scheduler {text!r}; choose one of {', '.join(SCHEDULER_CHOICES)}"
        )
    return name


def add_scheduler_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_prefix: str) -> None:
    """``--scheduler NAME``: the sampler, DDIM unless told otherwise."""
    parser.add_argument(
        "--scheduler",
        type=scheduler_argument,
        default="ddim",
        metavar="NAME",
        help=f"{help_prefix}: {', '.join(SCHEDULER_CHOICES)} (default ddim, the released sampler); built "
        "from the model's own scheduler config",
    )


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
    """``--weights-dir``, the four official-file options or ``--from-hub`` (none: the embedded default
    model), personalised weights (``--personalized``, ``--lora``) and the inference options (``--device``,
    ``--dtype``, ``--offload``, ``--decode-chunk-size``)."""
    weights = parser.add_argument_group(
        "weights",
        "a save_pretrained folder (--weights-dir), the official files (all four options) or the released "
        "model from the Hugging Face Hub (--from-hub); none: the embedded default model",
    )
    weights.add_argument(
        "--weights-dir", type=Path, help="folder written by ImageConductorPipeline.save_pretrained"
    )
    weights.add_argument("--pretrained-model-path", type=Path, help="Stable Diffusion 1.5 diffusers folder")
    weights.add_argument("--unet", type=Path, help="official unet.ckpt")
    weights.add_argument("--image-controlnet", type=Path, help="official image_controlnet.ckpt")
    weights.add_argument("--flow-controlnet", type=Path, help="official flow ControlNet .ckpt (with LoRA)")
    weights.add_argument(
        "--from-hub",
        nargs="?",
        const="",
        default=None,
        metavar="REPO",
        help="the released checkpoints from this Hub repository (default TencentARC/ImageConductor), fetched "
        "once into the Hugging Face cache with only the base model's configs, VAE, text encoder and tokenizer",
    )
    weights.add_argument(
        "--base-model",
        default=None,
        metavar="ID",
        help="with --from-hub: the Stable Diffusion 1.5 repository (default stable-diffusion-v1-5/"
        "stable-diffusion-v1-5)",
    )
    weights.add_argument(
        "--personalized",
        default=None,
        metavar="FILE",
        help="DreamBooth SD1.5 single-file checkpoint (.safetensors) replacing the SD layers, VAE and text "
        "encoder; with official or Hub weights (helloobjects_V12c: the released one from the Hub)",
    )
    weights.add_argument(
        "--lora",
        action="append",
        default=[],
        type=lora_argument,
        metavar="FILE[:SCALE]",
        help="SD1.5 LoRA (.safetensors, kohya/A1111 or diffusers keys) at SCALE (default 0.8, the released "
        "app's alpha); repeatable (TUSUN: the released one from the Hub)",
    )
    inference = parser.add_argument_group("inference")
    inference.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    inference.add_argument(
        "--dtype",
        default="float32",
        choices=sorted(_DTYPES),
        help="dtype the networks run in (default float32; bfloat16 on CPU or GPU, float16 on GPU)",
    )
    inference.add_argument(
        "--offload",
        action="store_true",
        help="model CPU offload: keep each network on the accelerator only while it runs (needs a GPU)",
    )
    inference.add_argument(
        "--compile",
        action="store_true",
        help="compile the networks with torch.compile: a minute or more of compiling first; meant for GPUs and "
        "many videos at one size (on a CPU the steps are no faster and hold more memory: docs/pipeline.md)",
    )
    inference.add_argument(
        "--decode-chunk-size",
        type=positive_int,
        default=1,
        help="frames per VAE decoder call (default 1: frame by frame, the least memory)",
    )


_DTYPES = ("float16", "bfloat16", "float32")


def lora_argument(text: str) -> tuple[Path, float]:
    """argparse type: ``FILE.safetensors[:SCALE]`` as ``(path, scale)`` (scale default 0.8)."""
    path, sep, scale = text.rpartition(":")
    if sep and path:
        try:
            return Path(path), finite_float(scale)
        except argparse.ArgumentTypeError:
            pass
    return Path(text), 0.8


def weights_folder(args: argparse.Namespace) -> Path | None:
    """The save_pretrained folder the weight options select (``--weights-dir`` or the embedded default),
    or None when the official files or ``--from-hub`` are given. CLIError for conflicting or incomplete options."""
    from imageconductor.pipelines import default_model_path

    given = [flag for flag, name in _OFFICIAL_FLAGS.items() if getattr(args, name) is not None]
    if args.weights_dir is not None and given:
        raise CLIError(f"pass either --weights-dir or the official files, not both (got {', '.join(given)})")
    if getattr(args, "from_hub", None) is not None:
        if given or args.weights_dir is not None:
            raise CLIError("pass one of --from-hub, --weights-dir and the official files")
        return None
    if getattr(args, "base_model", None) is not None:
        raise CLIError("--base-model goes with --from-hub")
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


def resolve_device(name: str | None) -> str:
    """The torch device to run on: ``name`` (default: cuda if available, else cpu), checked without
    loading anything: CLIError when torch does not know it or this machine does not have it."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(f"unknown device {name!r}: {one_line(exc, 200)}") from None
    if device.type == "cpu":
        return name
    backend = getattr(torch, device.type, None)
    if device.type == "mps":
        backend = torch.backends.mps
    is_available = getattr(backend, "is_available", None)
    if is_available is None or not is_available():
        raise CLIError(f"device {name!r} is not available on this machine (try --device cpu)")
    count = getattr(backend, "device_count", None)
    if device.index is not None and count is not None and device.index >= count():
        raise CLIError(
            f"device {name!r} is not available: this machine has {count()} {device.type} device(s)"
        )
    return name


def official_files(args: argparse.Namespace) -> dict[str, Path] | None:
    """The ``from_official`` arguments the weight options select: the four official files, or with
    ``--from-hub`` the files fetched into (or found in) the Hugging Face cache; None for a folder."""
    if weights_folder(args) is not None:
        return None
    if getattr(args, "from_hub", None) is None:
        return {
            "pretrained_model_path": args.pretrained_model_path,
            "unet_path": args.unet,
            "image_controlnet_path": args.image_controlnet,
            "flow_controlnet_path": args.flow_controlnet,
        }
    if getattr(args, "hub_files", None) is None:
        from imageconductor.pipelines.hub import (
            RELEASED_REPO_ID,
            SD15_REPO_ID,
            HubWeightsError,
            fetch_official_files,
        )

        print("fetching the released files from the Hugging Face Hub (once; cached) ...", file=sys.stderr)
        try:
            files = fetch_official_files(args.from_hub or RELEASED_REPO_ID, args.base_model or SD15_REPO_ID)
        except HubWeightsError as exc:
            raise CLIError(one_line(exc)) from exc
        args.hub_files = dict(vars(files))
    return args.hub_files


def check_memory(args: argparse.Namespace, settings: SamplingSettings, device: torch.device) -> None:
    """CLIError, with the estimate, when the request cannot fit in the memory ``device`` has free (see
    `imageconductor.pipelines.memory`); reads configs only."""
    import torch

    from imageconductor.guidance import plan_guidance
    from imageconductor.pipelines import memory

    folder = weights_folder(args)
    root = folder if folder is not None else official_files(args)["pretrained_model_path"]
    try:
        counts = (
            memory.folder_parameter_counts(folder)
            if folder is not None
            else memory.official_parameter_counts(root)
        )
        unet_config = json.loads((Path(root) / "unet" / "config.json").read_text())
        vae_config = json.loads((Path(root) / "vae" / "config.json").read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot read the model configs in {root}: {one_line(exc)}") from exc
    rows = plan_guidance(
        settings.mode or "object",
        settings.guidance_scale,
        settings.camera_free_guidance,
        settings.motion_guidance_scale,
        trajectory_control=settings.flow_conditioning_scale != 0,
    ).num_rows
    estimate = memory.estimate_request_memory(
        counts,
        unet_config,
        vae_config,
        settings.num_frames,
        settings.height,
        settings.width,
        dtype=getattr(torch, args.dtype),
        guidance_rows=rows,
        decode_chunk_size=args.decode_chunk_size,
        offload=args.offload,
    )
    available = memory.available_memory(device)
    if estimate.total > available:
        raise CLIError(
            f"this request needs {estimate.describe()} on {device} but {available / 1024**3:.1f} GiB is "
            "free; use fewer frames or a smaller size, --dtype bfloat16, --offload (GPU) or fewer guidance rows"
        )


def load_pipeline(
    args: argparse.Namespace, settings: SamplingSettings | None = None
) -> ImageConductorPipeline:
    """The ImageConductorPipeline the weight options select (see `add_weight_options`) in ``--dtype``, with
    ``--personalized`` / ``--lora`` applied, on ``args.device`` (or offloaded to it with ``--offload``).

    The device is checked first; with ``settings`` the request's memory estimate is checked against the
    device's free memory before any weight is loaded (CLIError with the estimate).
    """
    import torch

    from imageconductor.pipelines import ImageConductorPipeline

    device = torch.device(resolve_device(getattr(args, "device", None)))
    folder = weights_folder(args)
    if getattr(args, "personalized", None) is not None and folder is not None:
        raise CLIError(
            "--personalized needs the official files or --from-hub (their SD1.5 configs describe it)"
        )
    if getattr(args, "offload", False) and device.type == "cpu":
        raise CLIError(
            "--offload keeps the networks on the CPU between uses of a GPU; it needs a CUDA device"
        )
    files = official_files(args)
    if settings is not None:
        check_memory(args, settings, device)
    dtype = getattr(torch, getattr(args, "dtype", "float32"))
    print(f"loading weights ({device}, {dtype}) ...", file=sys.stderr)
    try:
        if getattr(args, "from_hub", None) is not None:
            from imageconductor.pipelines.hub import RELEASED_REPO_ID, SD15_REPO_ID

            # official_files(args) has fetched the files into the cache already: read them from there
            pipe = ImageConductorPipeline.from_hub(
                args.from_hub or RELEASED_REPO_ID,
                args.base_model or SD15_REPO_ID,
                local_files_only=True,
                torch_dtype=dtype,
            )
        elif files is not None:
            pipe = ImageConductorPipeline.from_official(**files, torch_dtype=dtype)
        else:
            pipe = ImageConductorPipeline.from_pretrained(folder, torch_dtype=dtype)
        if getattr(args, "personalized", None) is not None:
            pipe.load_personalized(args.personalized)
        for path, scale in getattr(args, "lora", []):
            pipe.load_lora(path, scale=scale)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CLIError(f"cannot load weights: {one_line(exc)}") from exc
    try:
        if getattr(args, "offload", False):
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(f"cannot use device {device!r}: {one_line(exc)}") from exc
    if getattr(args, "compile", False):
        pipe.compile_networks(dynamic=False)
    return pipe


# ----------------------------------------------------------------------------------- sampling options
def add_trajectory_size_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--trajectory-size WxH``: the frame the points of an official list file were drawn on."""
    parser.add_argument(
        "--trajectory-size",
        type=frame_size,
        default=None,
        metavar="WxH",
        help="frame the points of an official list file were drawn on (default 384x256, the released "
        "canvas); a rich file states its own",
    )


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
    group.add_argument(
        "--steps",
        type=positive_int,
        default=25,
        help="sampling steps (default 25; at most 1000, the scheduler's training timesteps, 999 for the released DDIM)",
    )
    add_scheduler_option(group, "sampler")
    group.add_argument(
        "--guidance-scale",
        type=non_negative_float,
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
    group.add_argument("--seed", type=seed_value, default=seed_default, help=seed_help)
    if not per_request:
        return
    group.add_argument(
        "--camera-free-guidance",
        type=non_negative_float,
        default=None,
        help="λ_traj of camera-free guidance (paper Eq. 5); off by default",
    )
    group.add_argument(
        "--flow-scale",
        type=non_negative_float,
        default=1.0,
        help="factor on the motion ControlNet's residuals (default 1; 0 = trajectory control off)",
    )
    add_video_size_options(group)


def resolve_video_size(args: argparse.Namespace) -> VideoSize:
    """The video size asked for: ``--num-frames/--height/--width`` where given, else the selected model's
    native size; CLIError unless height and width are multiples of the model's VAE factor."""
    from imageconductor.pipelines import VideoSize, check_video_size

    index = model_index(args)
    native = VideoSize.native(index)
    size = VideoSize(
        num_frames=args.num_frames or native.num_frames,
        height=args.height or native.height,
        width=args.width or native.width,
    )
    try:
        check_video_size(size.num_frames, size.height, size.width, vae_scale_factor(args))
    except ValueError as exc:
        raise CLIError(f"--num-frames/--height/--width: {exc}") from None
    return size


def vae_scale_factor(args: argparse.Namespace) -> int:
    """The selected model's VAE downsampling factor, read from its VAE config without loading weights."""
    config_path = model_root(args) / "vae" / "config.json"
    from imageconductor.models import vae_scale_factor as factor_of

    try:
        return factor_of(json.loads(config_path.read_text())["block_out_channels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"cannot read the VAE config {config_path}: {one_line(exc)}") from exc


def check_steps(steps: int, config: dict[str, Any]) -> None:
    """CLIError when ``steps`` exceeds what a scheduler of ``config`` (the model's scheduler config, see
    `scheduler_config`) can take (`max_inference_steps`)."""
    from imageconductor.pipelines.schedulers import max_inference_steps

    try:
        max_steps = max_inference_steps(config)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"cannot read the scheduler config: {one_line(exc)}") from exc
    if steps > max_steps:
        raise CLIError(
            f"--steps must be at most {max_steps} (what the scheduler's training timesteps allow), got {steps}"
        )


def scheduler_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config of the scheduler the selected weights sample with, read without loading weights: the
    folder's ``scheduler/scheduler_config.json``, or the released DDIM settings for the official files and
    ``--from-hub`` (which `from_official` uses instead of the SD1.5 folder's scheduler)."""
    folder = weights_folder(args)
    if folder is None:
        from imageconductor.models import official_scheduler

        return dict(official_scheduler().config)
    return read_scheduler_config(folder)


def read_scheduler_config(folder: Path) -> dict[str, Any]:
    """The JSON object in a model folder's ``scheduler/scheduler_config.json``; CLIError when it is
    missing, unreadable or not an object."""
    config_path = Path(folder) / "scheduler" / "scheduler_config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read the scheduler config {config_path}: {one_line(exc)}") from exc
    if not isinstance(config, dict):
        raise CLIError(f"the scheduler config {config_path} must hold a JSON object")
    return config


def check_scheduler_option(name: str, config: dict[str, Any]) -> str:
    """``--scheduler`` checked against the model's scheduler ``config``: CLIError when that scheduler
    cannot sample the model (e.g. its prediction type), before any weight is loaded."""
    from imageconductor.pipelines import check_scheduler

    try:
        return check_scheduler(name, config)
    except ValueError as exc:
        raise CLIError(f"--scheduler: {one_line(exc)}") from None


def model_root(args: argparse.Namespace) -> Path:
    """The folder holding the selected model's configs: the saved pipeline or the Stable Diffusion folder."""
    folder = weights_folder(args)
    return Path(official_files(args)["pretrained_model_path"] if folder is None else folder)


def sampling_settings(args: argparse.Namespace, size: VideoSize, seed: int) -> SamplingSettings:
    """The `SamplingSettings` the sampling options ask for, at ``size``."""
    from imageconductor.pipelines import SamplingSettings

    if args.mode == "none" and args.camera_free_guidance is not None:
        raise CLIError("--camera-free-guidance needs --mode object, camera or a blend (not none)")
    config = scheduler_config(args)
    check_steps(args.steps, config)
    scheduler = check_scheduler_option(args.scheduler, config)
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
        scheduler=scheduler,
    )


# ------------------------------------------------------------------------------------------ input files
def load_image(path: Path) -> Image:
    """The RGB PIL image at ``path``, upright by its EXIF orientation (`imageconductor.files.read_image`);
    CLIError when it is missing, unreadable or over the pixel limit."""
    from imageconductor.files import FileCheckError, read_image

    try:
        return read_image(path)
    except FileCheckError as exc:
        raise CLIError(str(exc)) from None


def output_file(path: Path, flag: str) -> Path:
    """``path`` checked as an output file before any work (`imageconductor.files.check_output_file`)."""
    from imageconductor.files import FileCheckError, check_output_file

    try:
        return check_output_file(path)
    except FileCheckError as exc:
        raise CLIError(f"{flag}: {exc}") from None


def output_folder(path: Path, flag: str, not_inside: Path | None = None) -> Path:
    """``path`` checked as an output folder before any work (`imageconductor.files.check_output_folder`),
    outside the folder ``not_inside`` when given."""
    from imageconductor.files import FileCheckError, check_output_folder

    try:
        return check_output_folder(path, not_inside=not_inside)
    except FileCheckError as exc:
        raise CLIError(f"{flag}: {exc}") from None


def load_trajectory_file(
    path: Path, width: int, height: int, source_size: tuple[int, int] | None = None
) -> TrajectorySet:
    """The trajectory file at ``path`` in the ``width x height`` frame: an official list is read in the
    released 384x256 frame (or ``source_size``) and rescaled (see
    `imageconductor.pipelines.load_trajectory_set`); CLIError naming what is wrong."""
    from imageconductor.pipelines import load_trajectory_set

    if not path.is_file():
        raise CLIError(f"trajectory file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return load_trajectory_set(path, width, height, source_size=source_size)
    except (ValueError, OSError) as exc:
        raise CLIError(f"bad trajectory file {path}: {one_line(exc)}") from exc
