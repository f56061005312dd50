"""imageconductor: precise camera and object motion control for image-to-video generation."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["ImageConductorPipeline", "__version__"]


def __getattr__(name: str):
    # Keep `import imageconductor` light: heavy modules load on first use.
    if name == "ImageConductorPipeline":
        from imageconductor.pipelines.image_conductor import ImageConductorPipeline

        return ImageConductorPipeline
    raise AttributeError(f"module 'imageconductor' has no attribute {name!r}")
