"""imageconductor: precise camera and object motion control for image-to-video generation."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "ImageConductorControlNetModel",
    "ImageConductorPipeline",
    "ImageConductorUNetModel",
    "__version__",
]


def __getattr__(name: str):
    # The model classes load on first use: importing them pulls in torch, diffusers and transformers (about
    # 8 s on a 2-core machine), and every command of the CLI imports this package (`imageconductor --help`
    # takes 0.1 s without them). diffusers' generic loaders look the classes up on this package.
    if name == "ImageConductorPipeline":
        from imageconductor.pipelines import ImageConductorPipeline

        return ImageConductorPipeline
    if name in ("ImageConductorUNetModel", "ImageConductorControlNetModel"):
        from imageconductor import models

        return getattr(models, name)
    raise AttributeError(f"module 'imageconductor' has no attribute {name!r}")
