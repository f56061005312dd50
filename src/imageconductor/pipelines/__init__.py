"""Diffusion pipelines of imageconductor (loaded lazily: importing this package stays light)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ImageConductorPipeline", "ImageConductorPipelineOutput", "default_model_path"]

#: Where a packaged default model (a ``save_pretrained`` folder) is installed, if any.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_model"


def default_model_path() -> Path | None:
    """The packaged default model folder (``imageconductor/assets/default_model``), or None if absent.

    The folder is a diffusers-style ``ImageConductorPipeline.save_pretrained`` output; it counts as
    installed once its ``model_index.json`` exists.
    """
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "model_index.json").is_file() else None


def __getattr__(name: str):
    if name in ("ImageConductorPipeline", "ImageConductorPipelineOutput"):
        from imageconductor.pipelines import image_conductor

        return getattr(image_conductor, name)
    raise AttributeError(f"module 'imageconductor.pipelines' has no attribute {name!r}")
