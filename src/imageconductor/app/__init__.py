"""The interactive web app: draw trajectories on an image, generate, watch and download the video.

``build_app(pipeline)`` returns the Gradio Blocks; ``launch_app(pipeline, host=..., port=...)`` serves it.
The drawing state and its operations (:mod:`imageconductor.app.state`) are pure and free of Gradio;
Gradio is imported only when the app itself is built.
"""

from __future__ import annotations

import importlib

__all__ = ["build_app", "launch_app", "native_video_size"]

_LAZY = {
    "build_app": "imageconductor.app.ui",
    "launch_app": "imageconductor.app.ui",
    "native_video_size": "imageconductor.app.settings",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imageconductor.app' has no attribute {name!r}")
