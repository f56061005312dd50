"""Generation settings: a model's native video size and the sampling arguments of one request.

A model folder states its native size in its own ``model_index.json`` (``native_size``, as diffusers keeps
``sample_size`` in a model's config), so the pipeline, the command line and the app all render at that
size unless told otherwise. :class:`SamplingSettings` carries the sampling arguments that the command
line, the evaluation runner and the training samples pass to the pipeline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from imageconductor.guidance import AdapterSelection, format_mode, normalize_mode

__all__ = [
    "RELEASED_VIDEO_SIZE",
    "SamplingSettings",
    "VideoSize",
    "read_model_index",
    "synthetic_world",
    "write_model_settings",
]

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


#: The released model's size: 16 frames at 256 x 384.
RELEASED_VIDEO_SIZE = VideoSize(num_frames=16, height=256, width=384)


def synthetic_world(config: Mapping[str, Any]) -> dict[str, float]:
    """``texture_scale`` and ``motion_scale`` of the synthetic world a pipeline config (``model_index.json``)
    says its model was trained on; 1 each for a model that states none."""
    world = config.get("synthetic_world") or {}
    return {name: float(world.get(name, 1.0)) for name in ("texture_scale", "motion_scale")}


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
    generator that draws the initial noise and the first frame's VAE sample.
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

    def __post_init__(self) -> None:
        if self.mode is not None:
            object.__setattr__(self, "mode", normalize_mode(self.mode))

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
