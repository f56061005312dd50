"""The point tracker the metrics use: the project's curation tracker behind one small signature.

Every metric tracks query points given on the first frame of a video through all of its frames:

    track(frames (T, H, W, 3) uint8, points (N, 2) xy pixels on frame 0)
        -> TrackResult(positions (T, N, 2) float64, visible (T, N) bool)

The tracker itself is :mod:`imageconductor.curation.tracking` (OpenCV pyramidal Lucas–Kanade with a
forward–backward check by default, CoTracker when its package and a local checkpoint are given);
any callable ``(frames, points) -> (positions, visible)`` can be passed instead.

Lucas–Kanade's window (17 px) and 3-level pyramid are sized for frames of a few hundred pixels. On the
small frames of the embedded default model (96x64) a sprite is about as wide as the window and the
pyramid's top level is 12x8 pixels, so fast small sprites are lost even in the exact rendered clip. The
evaluation therefore tracks frames enlarged by a whole factor until their short side reaches
``MIN_TRACKING_SHORT_SIDE`` (128 px; frames at least that large are tracked as they are), with the
pixel thresholds scaled alike, and maps the tracks back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imageconductor.curation.tracking import LucasKanadeTracker, make_tracker

__all__ = [
    "MIN_TRACKING_SHORT_SIDE",
    "EnlargingLucasKanadeTracker",
    "TrackResult",
    "Tracker",
    "build_tracker",
    "track",
]

#: Frames with a shorter short side are enlarged by a whole factor before Lucas–Kanade tracking.
MIN_TRACKING_SHORT_SIDE = 128

Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(frames (T, H, W, 3) uint8, points (N, 2)) -> (positions (T, N, 2), visible (T, N))``."""


@dataclass(frozen=True)
class TrackResult:
    """Tracked positions ``(T, N, 2)`` (x, y pixels) and visibility ``(T, N)``."""

    positions: np.ndarray
    visible: np.ndarray


@dataclass(frozen=True)
class EnlargingLucasKanadeTracker:
    """The curation LK tracker run on frames enlarged (bicubic) by the smallest whole factor that brings
    their short side to ``min_short_side``; ``fb_threshold`` and the refinement radius are in pixels of
    the given frames (scaled with the factor), and the returned tracks are too."""

    fb_threshold: float = 1.0
    min_short_side: int = MIN_TRACKING_SHORT_SIDE

    def factor(self, height: int, width: int) -> int:
        """The enlargement used for frames of ``height`` x ``width`` (1: tracked as they are)."""
        return max(1, math.ceil(self.min_short_side / min(height, width)))

    def __call__(self, frames: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        factor = self.factor(*frames.shape[1:3])
        tracker = LucasKanadeTracker(
            fb_threshold=self.fb_threshold * factor,
            refine_radius=LucasKanadeTracker().refine_radius * factor,
        )
        if factor == 1:
            return tracker(frames, points)
        enlarged = np.stack(
            [cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC) for frame in frames]
        )
        # cv2.resize aligns pixel centres: x_big + 0.5 = factor * (x + 0.5)
        positions, visible = tracker(enlarged, (np.asarray(points, dtype=np.float64) + 0.5) * factor - 0.5)
        return (np.asarray(positions, dtype=np.float64) + 0.5) / factor - 0.5, visible


def build_tracker(
    name: str = "lk",
    cotracker_checkpoint: str | Path | None = None,
    fb_threshold: float = 1.0,
    min_short_side: int = MIN_TRACKING_SHORT_SIDE,
) -> Tracker:
    """The evaluation tracker by name: ``"lk"`` (default; small frames enlarged to ``min_short_side``,
    see `EnlargingLucasKanadeTracker`) or ``"cotracker"`` (needs a local checkpoint)."""
    if name == "lk":
        return EnlargingLucasKanadeTracker(fb_threshold=fb_threshold, min_short_side=min_short_side)
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
