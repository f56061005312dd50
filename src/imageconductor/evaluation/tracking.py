"""The point tracker the metrics use: the project's curation tracker behind one small signature.

Every metric tracks query points given on the first frame of a video through all of its frames:

    track(frames (T, H, W, 3) uint8, points (N, 2) xy pixels on frame 0)
        -> TrackResult(positions (T, N, 2) float64, visible (T, N) bool)

The tracker itself is :mod:`imageconductor.curation.tracking` (OpenCV pyramidal Lucas–Kanade with a
forward–backward check by default, CoTracker when its package and a local checkpoint are given);
any callable ``(frames, points) -> (positions, visible)`` can be passed instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imageconductor.curation.tracking import make_tracker

__all__ = ["TrackResult", "Tracker", "build_tracker", "track"]

Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(frames (T, H, W, 3) uint8, points (N, 2)) -> (positions (T, N, 2), visible (T, N))``."""


@dataclass(frozen=True)
class TrackResult:
    """Tracked positions ``(T, N, 2)`` (x, y pixels) and visibility ``(T, N)``."""

    positions: np.ndarray
    visible: np.ndarray


def build_tracker(
    name: str = "lk", cotracker_checkpoint: str | Path | None = None, fb_threshold: float = 1.0
) -> Tracker:
    """The project's tracker by name: ``"lk"`` (default) or ``"cotracker"`` (needs a local checkpoint)."""
    return make_tracker(name, fb_threshold=fb_threshold, cotracker_checkpoint=cotracker_checkpoint)


def track(frames: np.ndarray, points: np.ndarray, tracker: Tracker | None = None) -> TrackResult:
    """Track ``points`` (N, 2), given on frame 0, through ``frames`` (T, H, W, 3) uint8."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 2:
        raise ValueError(f"need at least 2 frames to track, got {frames.shape[0]}")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ValueError("query points contain NaN or infinite values")
    positions, visible = (tracker or build_tracker())(frames, points)
    positions = np.asarray(positions, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    expected = (frames.shape[0], len(points))
    if positions.shape != (*expected, 2) or visible.shape != expected:
        raise RuntimeError(
            f"tracker returned positions {positions.shape} / visibility {visible.shape}, "
            f"expected {(*expected, 2)} / {expected}"
        )
    return TrackResult(positions, visible)
