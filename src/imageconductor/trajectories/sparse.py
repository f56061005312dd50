"""Sparse track sampling for training (paper, Sec. 2.2).

From a dense set of tracked points, ``n`` tracks (``n`` uniform in ``[n_min, n_max]``) are drawn without
replacement with probability proportional to their normalised motion intensity (path length).
"""

from __future__ import annotations

import numpy as np

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.flow import check_dense_tracks


def motion_intensity(tracks: np.ndarray, visibility: np.ndarray | None = None) -> np.ndarray:
    """Path length of each track: ``(N,)`` sum of ``|p[t+1] - p[t]|`` over steps visible at both ends."""
    positions, visible = check_dense_tracks(tracks, visibility)
    step_visible = visible[:-1] & visible[1:]
    steps = np.where(step_visible[..., None], positions[1:] - positions[:-1], 0.0)
    return np.linalg.norm(steps, axis=-1).sum(axis=0)


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TrajectoryError(f"rng is {type(rng).__name__}; expected a numpy Generator, an int seed or None")


def sample_sparse_tracks(
    tracks: np.ndarray,
    visibility: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
    n_min: int = 1,
    n_max: int = 8,
) -> np.ndarray:
    """Choose a few tracks of a dense set, favouring those that move.

    ``n`` is drawn uniformly from ``[n_min, n_max]``; tracks are then drawn without replacement with
    probability ``motion_intensity / motion_intensity.sum()``. Tracks that do not move are never
    chosen while any track moves (so fewer than ``n`` come back when fewer move). If nothing moves,
    ``n`` tracks are drawn uniformly from those visible in at least one frame.

    Args:
        tracks: ``(T, N, 2)`` per-frame positions.
        visibility: optional ``(T, N)`` bool.
        rng: numpy Generator (or seed) — the only source of randomness.

    Returns:
        Sorted ``int64`` indices into ``N``.
    """
    for name, value in (("n_min", n_min), ("n_max", n_max)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise TrajectoryError(f"{name} is {value!r}; expected a whole number >= 0")
    if n_min > n_max:
        raise TrajectoryError(f"n_min ({n_min}) is larger than n_max ({n_max})")
    generator = _generator(rng)
    intensity = motion_intensity(tracks, visibility)
    count = int(generator.integers(n_min, n_max + 1))
    moving = np.flatnonzero(intensity > 0)
    if len(moving):
        chosen = generator.choice(
            moving, size=min(count, len(moving)), replace=False, p=intensity[moving] / intensity[moving].sum()
        )
    else:
        if visibility is None:
            candidates = np.arange(len(intensity))
        else:
            candidates = np.flatnonzero(np.asarray(visibility, dtype=bool).any(axis=0))
        chosen = generator.choice(candidates, size=min(count, len(candidates)), replace=False)
    return np.sort(np.asarray(chosen, dtype=np.int64))
