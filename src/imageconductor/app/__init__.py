"""The interactive web app: draw trajectories on an image, generate, watch and download the video.

``build_app(pipeline)`` returns the Gradio Blocks; ``launch_app(pipeline, host=..., port=...)`` serves it.
The drawing state and its operations (:mod:`imageconductor.app.state`) are pure and free of Gradio, which is
an optional dependency (``pip install imageconductor[app]``): it is imported only when the app is built.
"""

from __future__ import annotations

from imageconductor.app.settings import native_video_size

__all__ = ["build_app", "launch_app", "native_video_size"]


def __getattr__(name: str):
    if name in ("build_app", "launch_app"):
        from imageconductor.app import ui

        return getattr(ui, name)
    raise AttributeError(f"module 'imageconductor.app' has no attribute {name!r}")
