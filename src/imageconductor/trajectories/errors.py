"""The one exception type raised for bad trajectory input."""

from __future__ import annotations


class TrajectoryError(ValueError):
    """Trajectory input is malformed or out of range.

    Messages name what is wrong and, where it applies, the track index and point index at fault
    (both counted from 0), e.g. ``"track 1, point 3: x=412.0 is outside the image (0 <= x <= 384)"``.
    """
