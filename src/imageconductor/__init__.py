"""imageconductor: precise camera and object motion control for image-to-video generation."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public names loaded on first use, so `import imageconductor` stays light. diffusers' generic loaders look
# model classes up on this top-level package when they reload a saved pipeline folder.
_LAZY_EXPORTS = {
    "ImageConductorPipeline": "imageconductor.pipelines.image_conductor",
    "ImageConductorUNetModel": "imageconductor.models",
    "ImageConductorControlNetModel": "imageconductor.models",
}

__all__ = [*_LAZY_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'imageconductor' has no attribute {name!r}")
