"""Diffusion pipelines of imageconductor (loaded lazily: importing this package stays light)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "MODEL_INFO_FILE",
    "ImageConductorPipeline",
    "ImageConductorPipelineOutput",
    "default_model_path",
    "read_model_info",
]

#: File in a model folder with its native ``num_frames`` / ``height`` / ``width`` (and, for models trained
#: on the synthetic world, its ``texture_scale`` and ``motion_scale``), written by ``training.make_default``.
MODEL_INFO_FILE = "imageconductor_model.json"

#: Where a packaged default model (a ``save_pretrained`` folder) is installed, if any.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_model"


def default_model_path() -> Path | None:
    """The packaged default model folder (``imageconductor/assets/default_model``), or None if absent.

    The folder is a diffusers-style ``ImageConductorPipeline.save_pretrained`` output; it counts as
    installed once its ``model_index.json`` exists.
    """
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "model_index.json").is_file() else None


def read_model_info(folder: str | Path) -> dict[str, Any]:
    """The ``MODEL_INFO_FILE`` of a model folder as a dict; ``{}`` when the folder has none.
    Raises OSError / ValueError when the file exists but cannot be read or parsed."""
    path = Path(folder) / MODEL_INFO_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def __getattr__(name: str):
    if name in ("ImageConductorPipeline", "ImageConductorPipelineOutput"):
        from imageconductor.pipelines import image_conductor

        return getattr(image_conductor, name)
    raise AttributeError(f"module 'imageconductor.pipelines' has no attribute {name!r}")
