"""Diffusion pipelines of imageconductor: `ImageConductorPipeline` and its generation settings."""

from __future__ import annotations

from pathlib import Path

from imageconductor.pipelines.hub import HubWeightsError
from imageconductor.pipelines.image_conductor import (
    ImageConductorPipeline,
    ImageConductorPipelineOutput,
    load_trajectory_set,
    output_to_uint8,
    prepare_first_frame,
)
from imageconductor.pipelines.schedulers import (
    DEFAULT_SCHEDULER,
    SCHEDULER_NAMES,
    check_scheduler,
    check_scheduler_name,
    make_scheduler,
    scheduler_name,
)
from imageconductor.pipelines.settings import (
    MAX_SEED,
    MAX_VIDEO_PIXELS,
    RELEASED_VIDEO_SIZE,
    SamplingSettings,
    VideoSize,
    check_sampling_numbers,
    check_seed,
    check_video_size,
    read_model_index,
    synthetic_world,
    write_model_settings,
)

__all__ = [
    "DEFAULT_SCHEDULER",
    "MAX_SEED",
    "MAX_VIDEO_PIXELS",
    "RELEASED_VIDEO_SIZE",
    "SCHEDULER_NAMES",
    "HubWeightsError",
    "ImageConductorPipeline",
    "ImageConductorPipelineOutput",
    "SamplingSettings",
    "VideoSize",
    "check_sampling_numbers",
    "check_scheduler",
    "check_scheduler_name",
    "check_seed",
    "check_video_size",
    "default_model_path",
    "load_trajectory_set",
    "make_scheduler",
    "output_to_uint8",
    "prepare_first_frame",
    "read_model_index",
    "scheduler_name",
    "synthetic_world",
    "write_model_settings",
]

#: Where a packaged default model (a ``save_pretrained`` folder) is installed, if any.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_model"


def default_model_path() -> Path | None:
    """The packaged default model folder (``imageconductor/assets/default_model``), or None if absent.

    The folder is a diffusers-style ``ImageConductorPipeline.save_pretrained`` output; it counts as
    installed once its ``model_index.json`` exists.
    """
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "model_index.json").is_file() else None
