"""Clip kind from the tracks: ``camera`` (one global motion explains every point) or ``object``.

For every frame ``t``, one homography from frame 0 to frame ``t`` is fitted with RANSAC
(``cv2.findHomography``) to the points visible in both. A point is an outlier in frame ``t`` when the
homography misses it by more than ``residual_px``; it *moves on its own* when it is an outlier in at
least ``min_outlier_frames`` frames. The clip is ``object`` when at least ``min_moving_points`` points
and ``min_moving_share`` of the points ever visible after frame 0 move on their own, else ``camera``.
A camera pan, zoom or rotation (and a still shot) is one homography for a distant or flat scene; moving
objects are points the homography cannot follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLIP_KINDS = ("camera", "object")
"""Labels :func:`classify_clip_kind` gives (``camera``: camera-only motion)."""


@dataclass(frozen=True)
class ClipKindResult:
    """The label and what decided it."""

    kind: str
    moving_points: int
    tracked_points: int

    @property
    def moving_share(self) -> float:
        """Share of tracked points that move on their own."""
        return self.moving_points / self.tracked_points if self.tracked_points else 0.0


def outlier_frames(tracks: np.ndarray, visibility: np.ndarray, residual_px: float = 2.0) -> np.ndarray:
    """Per point, the number of frames in which the global frame-0 -> frame-t homography misses it."""
    tracks = np.asarray(tracks, dtype=np.float32)
    visibility = np.asarray(visibility, dtype=bool)
    counts = np.zeros(tracks.shape[1], dtype=np.int64)
    for t in range(1, len(tracks)):
        both = np.flatnonzero(visibility[0] & visibility[t])
        if len(both) < 8:
            continue
        start, end = tracks[0, both], tracks[t, both]
        homography, _ = cv2.findHomography(
            start, end, cv2.RANSAC, residual_px, maxIters=2000, confidence=0.999
        )
        if homography is None:
            continue
        mapped = cv2.perspectiveTransform(start.reshape(-1, 1, 2), homography).reshape(-1, 2)
        counts[both] += np.linalg.norm(mapped - end, axis=1) > residual_px
    return counts


def classify_clip_kind(
    tracks: np.ndarray,
    visibility: np.ndarray,
    *,
    residual_px: float = 2.0,
    min_outlier_frames: int = 3,
    min_moving_points: int = 3,
    min_moving_share: float = 0.01,
) -> ClipKindResult:
    """Label a clip ``camera`` or ``object`` from its tracks (T, N, 2) and visibility (T, N).

    RANSAC is seeded through OpenCV's global RNG (``cv2.setRNGSeed(0)`` here), so the label is the same
    on every run.
    """
    cv2.setRNGSeed(0)
    counts = outlier_frames(tracks, visibility, residual_px)
    tracked = int((np.asarray(visibility, bool)[0] & np.asarray(visibility, bool)[1:].any(axis=0)).sum())
    moving = int((counts >= min_outlier_frames).sum())
    is_object = moving >= min_moving_points and tracked > 0 and moving / tracked >= min_moving_share
    return ClipKindResult("object" if is_object else "camera", moving, tracked)
