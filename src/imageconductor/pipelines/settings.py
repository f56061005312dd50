"""Generation settings: a model's native video size and the sampling arguments of one request.

A model folder states its native size in its own ``model_index.json`` (``native_size``, as diffusers keeps
``sample_size`` in a model's config), so the pipeline, the command line and the app all render at that
size unless told otherwise. :class:`SamplingSettings` carries the sampling arguments that the command
line, the evaluation runner and the training samples pass to the pipeline.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from imageconductor.guidance import AdapterSelection, format_mode, normalize_mode
from imageconductor.pipelines.schedulers import DEFAULT_SCHEDULER, check_scheduler_name

__all__ = [
    "MAX_SEED",
    "MAX_VIDEO_PIXELS",
    "MAX_VIDEO_SIDE",
    "RELEASED_VIDEO_SIZE",
    "SamplingSettings",
    "VideoSize",
    "check_sampling_numbers",
    "check_seed",
    "check_video_size",
    "read_model_index",
    "synthetic_world",
    "write_model_settings",
]

#: Largest video asked for, in frames x height x width: 16 frames at 1024 x 1536 (16 times the released
#: size). A plain cap that refuses requests that could never fit in memory before any work starts.
MAX_VIDEO_PIXELS = 16 * 1024 * 1536
#: Longest side of a video in pixels (four times the released width; also bounds extreme aspect ratios
#: that stay under `MAX_VIDEO_PIXELS`).
MAX_VIDEO_SIDE = 4096
#: Seeds are 0 <= seed < 2**63 (what a torch.Generator accepts as a non-negative seed).
MAX_SEED = 2**63

#: The pipeline settings a model folder's ``model_index.json`` may hold besides its components.
MODEL_SETTING_NAMES = ("flow_encoding", "native_size", "synthetic_world")


@dataclass(frozen=True)
class VideoSize:
    """Frames, height and width of a video in pixels."""

    num_frames: int
    height: int
    width: int

    @classmethod
    def native(cls, config: Mapping[str, Any]) -> VideoSize:
        """The native size a pipeline config (``model_index.json``) states, else the released model's."""
        native = config.get("native_size") or {}
        return cls(
            **{name: int(native.get(name, value)) for name, value in asdict(RELEASED_VIDEO_SIZE).items()}
        )

    def as_dict(self) -> dict[str, int]:
        """``{"num_frames": ..., "height": ..., "width": ...}`` (pipeline keyword arguments)."""
        return asdict(self)


def check_video_size(num_frames: int, height: int, width: int, scale: int) -> None:
    """Raise ValueError unless the video size is usable: whole numbers, at least 2 frames, height and width
    multiples of the VAE factor ``scale`` and at most `MAX_VIDEO_SIDE`, and at most `MAX_VIDEO_PIXELS`
    frames x pixels."""
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    if height % scale or width % scale:
        raise ValueError(
            f"height and width must be multiples of {scale} (the model's VAE factor), got {height} and {width}"
        )
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2, got {num_frames}")
    if max(height, width) > MAX_VIDEO_SIDE:
        raise ValueError(f"height and width must be at most {MAX_VIDEO_SIDE}, got {height} and {width}")
    if num_frames * height * width > MAX_VIDEO_PIXELS:
        raise ValueError(
            f"{num_frames} frames of {width}x{height} are {num_frames * height * width:,} pixels, more than "
            f"the limit of {MAX_VIDEO_PIXELS:,} (16 frames of 1536x1024)"
        )


def _check_number(name: str, value: Any, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")


def check_sampling_numbers(
    num_inference_steps: int,
    guidance_scale: float,
    camera_free_guidance: float | None,
    motion_guidance_scale: float,
    flow_conditioning_scale: float,
    max_steps: int | None = None,
) -> None:
    """Raise ValueError naming the first sampling number that is not finite or out of range: steps are
    whole numbers from 1 to ``max_steps`` (the scheduler's training timesteps), the guidance scales,
    λ_traj and the flow scale finite numbers >= 0."""
    steps = num_inference_steps
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}")
    if max_steps is not None and steps > max_steps:
        raise ValueError(
            f"num_inference_steps must be at most {max_steps} (what the scheduler's training timesteps "
            f"allow), got {steps}"
        )
    _check_number("guidance_scale", guidance_scale)
    if camera_free_guidance is not None:
        _check_number("camera_free_guidance", camera_free_guidance)
    _check_number("motion_guidance_scale", motion_guidance_scale)
    _check_number("flow_conditioning_scale", flow_conditioning_scale)


def check_seed(seed: Any) -> int:
    """``seed`` as an int; ValueError unless it is a whole number with 0 <= seed < 2**63."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be a whole number with 0 <= seed < 2**63, got {seed!r}")
    return int(seed)


#: The released model's size: 16 frames at 256 x 384.
RELEASED_VIDEO_SIZE = VideoSize(num_frames=16, height=256, width=384)

#: The synthetic world's settings a model states (arguments of `imageconductor.synthetic.random_clip_spec`).
WORLD_SETTINGS = ("texture_scale", "motion_scale", "sprite_scale")


def synthetic_world(config: Mapping[str, Any]) -> dict[str, float]:
    """``texture_scale``, ``motion_scale`` and ``sprite_scale`` of the synthetic world a pipeline config
    (``model_index.json``) says its model was trained on; 1 each for a model that states none."""
    world = config.get("synthetic_world") or {}
    return {name: float(world.get(name, 1.0)) for name in WORLD_SETTINGS}


def read_model_index(folder: str | os.PathLike) -> dict[str, Any]:
    """A saved pipeline folder's ``model_index.json`` as a dict (its components and settings), read without
    loading any weights. Raises FileNotFoundError when there is none, ValueError when it is not JSON."""
    path = Path(folder) / "model_index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a saved ImageConductorPipeline (no model_index.json)")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return index


def write_model_settings(folder: str | os.PathLike, **settings: Any) -> None:
    """Set pipeline settings (``native_size``, ``synthetic_world``, ``flow_encoding``) in a saved folder's
    ``model_index.json``; the components stay as they are."""
    unknown = sorted(set(settings) - set(MODEL_SETTING_NAMES))
    if unknown:
        raise ValueError(f"unknown pipeline settings {unknown}; known: {list(MODEL_SETTING_NAMES)}")
    index = read_model_index(folder)
    index.update(settings)
    path = Path(folder) / "model_index.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)


@dataclass(frozen=True)
class SamplingSettings:
    """The sampling arguments of one generation request (see `ImageConductorPipeline.__call__`).

    ``None`` sizes are filled from the model's native size by the pipeline; ``seed`` seeds the CPU
    generator that draws the initial noise and the first frame's VAE sample; ``scheduler`` names the
    sampler (`imageconductor.pipelines.schedulers.SCHEDULER_NAMES`; ``"ddim"``, the released one, by
    default), built from the model's own scheduler config for each call.
    """

    mode: AdapterSelection | None = None
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    num_inference_steps: int = 25
    guidance_scale: float = 7.5
    camera_free_guidance: float | None = None
    motion_guidance_scale: float = 1.0
    flow_conditioning_scale: float = 1.0
    seed: int = 0
    scheduler: str = DEFAULT_SCHEDULER

    def __post_init__(self) -> None:
        """Normalise the mode and the scheduler name; ValueError for a number that is not finite or out of
        range, or an unknown scheduler."""
        if self.mode is not None:
            object.__setattr__(self, "mode", normalize_mode(self.mode))
        check_sampling_numbers(
            self.num_inference_steps,
            self.guidance_scale,
            self.camera_free_guidance,
            self.motion_guidance_scale,
            self.flow_conditioning_scale,
        )
        object.__setattr__(self, "seed", check_seed(self.seed))
        object.__setattr__(self, "scheduler", check_scheduler_name(self.scheduler))

    def with_size(self, size: VideoSize) -> SamplingSettings:
        """These settings with their unset sizes taken from ``size``."""
        return replace(
            self,
            num_frames=self.num_frames or size.num_frames,
            height=self.height or size.height,
            width=self.width or size.width,
        )

    def generator(self) -> torch.Generator:
        """A CPU generator seeded with ``seed`` (the same video on every device)."""
        return torch.Generator("cpu").manual_seed(self.seed)

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the pipeline call, the generator included."""
        kwargs = {name: value for name, value in asdict(self).items() if name != "seed"}
        return {**kwargs, "generator": self.generator()}

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record of the settings, with the mode as text."""
        record = asdict(self)
        record["mode"] = None if self.mode is None else format_mode(self.mode)
        return record
