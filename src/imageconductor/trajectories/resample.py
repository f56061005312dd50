"""Resampling a drawn track to one point per video frame, as the released code does (SciPy PCHIP)."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from imageconductor.trajectories.errors import TrajectoryError


def check_num_frames(num_frames: int) -> int:
    """Validate a frame count (a whole number >= 2)."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 2:
        raise TrajectoryError(f"num_frames is {num_frames!r}; expected a whole number >= 2")
    return int(num_frames)


def resample_track(track: np.ndarray, num_frames: int) -> np.ndarray:
    """Resample one track of ``(x, y)`` points to ``num_frames`` points.

    The points are placed at a uniform parameter by point index on [0, 1] and a shape-preserving cubic
    (PCHIP) is evaluated at ``num_frames`` uniform parameters. A one-point track is first turned into
    the two points ``(p, p + (1, 1))`` — the released code's "stationary" anchor, which therefore
    drifts by one pixel diagonally over the clip.

    Returns:
        ``(num_frames, 2)`` float64 array.
    """
    num_frames = check_num_frames(num_frames)
    try:
        points = np.asarray(track, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TrajectoryError(f"a track must be numeric points of shape (num_points, 2): {error}") from None
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise TrajectoryError(f"a track must have shape (num_points >= 1, 2); got {points.shape}")
    if not np.isfinite(points).all():
        raise TrajectoryError("a track contains non-finite coordinates")
    if len(points) == 1:
        points = np.stack([points[0], points[0] + 1.0])
    knots = np.linspace(0.0, 1.0, len(points))
    return PchipInterpolator(knots, points, axis=0)(np.linspace(0.0, 1.0, num_frames))
