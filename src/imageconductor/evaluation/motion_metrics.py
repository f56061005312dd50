"""Motion-control metrics: ObjMC, CamMC, and the background (global) motion used for disentanglement.

ObjMC / CamMC (DragAnything's ObjMC; Image Conductor computes CamMC the same way on pixel tracks):
resample every input trajectory to the video length (the project's PCHIP resampling), track the
first-frame points of those trajectories through the generated video with the project's tracker,
and average the Euclidean pixel distance between tracked and input positions over every
(track, frame) pair. Frame 0 is left out by default: the tracker starts exactly on the input point
there, so it only dilutes the mean.

Lost points: when the tracker loses a point (failed forward–backward check, left the frame) its
later positions are unknown. The default policy ``"hold"`` keeps it where it was last seen, so a
video whose object vanishes or smears is charged for it and every model is scored on the same set of
pairs; ``"exclude"`` drops those pairs instead; ``"tracker"`` uses the tracker's raw positions.

Background motion: a grid of points away from the object trajectories is tracked through the clip;
for every pair of consecutive frames the median displacement magnitude of the points visible in
both is the background's step, and their sum the background's path length. Divided by the mean path
length of the input trajectories it gives the fraction used for disentanglement (≈1 when the camera
moves along the trajectory, ≈0 when only the object moves). In object mode that path length is the
"camera leakage".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from imageconductor.evaluation.tracking import Tracker, track
from imageconductor.trajectories import resample_track
from imageconductor.trajectories.grid import grid_points

__all__ = [
    "BackgroundMotion",
    "EvaluationError",
    "MotionControlError",
    "background_grid",
    "background_motion",
    "background_motion_fraction",
    "cammc",
    "motion_control_error",
    "objmc",
    "path_length",
    "resample_tracks",
    "trajectory_distance",
]

InvisiblePolicy = Literal["hold", "exclude", "tracker"]

MIN_MOVING_PATH_PX = 2.0
"""Tracks shorter than this are stationary anchors (the official resampling lets a one-point track
drift by (1, 1) px over the clip); they do not count as trajectory length."""


class EvaluationError(ValueError):
    """Bad input to an evaluation function (empty trajectories, mismatched shapes, nothing tracked)."""


@dataclass(frozen=True)
class MotionControlError:
    """Distances between tracked and input positions.

    ``mean_px`` is the metric (ObjMC or CamMC); ``distances`` (T, N) holds every pair (NaN where the
    pair does not count), ``per_track_px`` (N,) and ``per_frame_px`` (T,) its means, ``tracked``
    (T, N, 2) the positions compared, ``target`` (T, N, 2) the resampled input trajectories and
    ``visible_fraction`` the share of counted frames in which the tracker still held the point.
    """

    mean_px: float
    per_track_px: np.ndarray
    per_frame_px: np.ndarray
    distances: np.ndarray
    tracked: np.ndarray
    target: np.ndarray
    visible: np.ndarray
    visible_fraction: float


@dataclass(frozen=True)
class BackgroundMotion:
    """Global motion of the background: per-step median magnitude ``step_px`` (T-1,), its sum
    ``path_px``, the median displacement from frame 0 ``displacement_px`` (T, 2), the number of grid
    points used and the tracked ``points`` / ``visible`` arrays. Steps where no background point is
    visible in both frames are NaN (left out of the sum); ``path_px`` is NaN when every step is."""

    step_px: np.ndarray
    path_px: float
    displacement_px: np.ndarray
    num_points: int
    points: np.ndarray
    visible: np.ndarray


def _as_track_list(trajectories, width: int, height: int) -> list[np.ndarray]:
    """Tracks in pixels of a ``width`` × ``height`` video from a TrajectorySet or a list of arrays."""
    if hasattr(trajectories, "tracks") and hasattr(trajectories, "rescaled"):
        image_size = tuple(getattr(trajectories, "image_size", (width, height)) or (width, height))
        if image_size != (width, height):
            trajectories = trajectories.rescaled(width, height)
        tracks = list(trajectories.tracks)
    else:
        tracks = list(trajectories)
    if not tracks:
        raise EvaluationError("no trajectories given")
    result = []
    for index, track_points in enumerate(tracks):
        array = np.asarray(track_points, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
            raise EvaluationError(f"track {index}: expected (N, 2) points, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise EvaluationError(f"track {index}: contains NaN or infinite values")
        result.append(array)
    return result


def resample_tracks(trajectories, num_frames: int, width: int, height: int) -> np.ndarray:
    """Input trajectories (TrajectorySet or list of (N_i, 2) arrays) → (num_frames, K, 2) pixel
    positions in a ``width`` × ``height`` video, with the project's PCHIP resampling."""

    tracks = _as_track_list(trajectories, width, height)
    return np.stack([np.asarray(resample_track(t, num_frames), dtype=np.float64) for t in tracks], axis=1)


def path_length(tracks: np.ndarray) -> np.ndarray:
    """Path length of each track in (T, K, 2): the sum of frame-to-frame step lengths → (K,)."""
    tracks = np.asarray(tracks, dtype=np.float64)
    return np.linalg.norm(np.diff(tracks, axis=0), axis=-1).sum(axis=0)


def trajectory_distance(
    tracked: np.ndarray,
    visible: np.ndarray,
    target: np.ndarray,
    invisible: InvisiblePolicy = "hold",
    include_first_frame: bool = False,
) -> MotionControlError:
    """Mean Euclidean distance between ``tracked`` and ``target`` (both (T, N, 2)); see the module
    docstring for ``invisible`` ("hold" | "exclude" | "tracker")."""
    tracked = np.asarray(tracked, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    if tracked.shape != target.shape or tracked.ndim != 3 or tracked.shape[-1] != 2:
        raise EvaluationError(f"tracked {tracked.shape} and target {target.shape} must both be (T, N, 2)")
    if visible.shape != tracked.shape[:2]:
        raise EvaluationError(f"visibility {visible.shape} must be {tracked.shape[:2]}")
    if invisible not in ("hold", "exclude", "tracker"):
        raise EvaluationError(f"invisible must be 'hold', 'exclude' or 'tracker', got {invisible!r}")

    num_frames = tracked.shape[0]
    first = 0 if include_first_frame else 1
    if num_frames <= first:
        raise EvaluationError(f"need at least {first + 1} frames, got {num_frames}")

    compared = tracked.copy()
    counted = np.ones(visible.shape, dtype=bool)
    if invisible == "hold":
        # Forward-fill from the last frame at which each point was visible (frame 0 is the query).
        last_seen = np.where(visible, np.arange(num_frames)[:, None], 0)
        last_seen = np.maximum.accumulate(last_seen, axis=0)
        compared = np.take_along_axis(tracked, last_seen[..., None], axis=0)
    elif invisible == "exclude":
        counted = visible.copy()
        counted[0] = True

    distances = np.linalg.norm(compared - target, axis=-1)
    distances = np.where(counted, distances, np.nan)
    distances[:first] = np.nan
    used = distances[first:]
    if np.isnan(used).all():
        raise EvaluationError("no (track, frame) pair left to compare: every point was lost after frame 0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN on purpose
        per_track = np.nanmean(used, axis=0)
        per_frame = np.nanmean(distances, axis=1)
    return MotionControlError(
        mean_px=float(np.nanmean(used)),
        per_track_px=per_track,
        per_frame_px=per_frame,
        distances=distances,
        tracked=compared,
        target=target,
        visible=visible,
        visible_fraction=float(visible[first:].mean()),
    )


def motion_control_error(
    frames: np.ndarray,
    trajectories,
    tracker: Tracker | None = None,
    invisible: InvisiblePolicy = "hold",
    include_first_frame: bool = False,
) -> MotionControlError:
    """Track the first-frame points of ``trajectories`` through ``frames`` (T, H, W, 3) uint8 and
    compare with the trajectories resampled to T frames (the shared core of ObjMC and CamMC)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise EvaluationError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    num_frames, height, width = frames.shape[:3]
    target = resample_tracks(trajectories, num_frames, width, height)
    result = track(frames, target[0], tracker)
    return trajectory_distance(result.positions, result.visible, target, invisible, include_first_frame)


def objmc(frames: np.ndarray, trajectories, **kwargs) -> MotionControlError:
    """ObjMC: object trajectories vs the tracked motion of the generated video (pixels)."""
    return motion_control_error(frames, trajectories, **kwargs)


def cammc(frames: np.ndarray, trajectories, **kwargs) -> MotionControlError:
    """CamMC: camera trajectories vs the tracked pixel motion of the generated video (pixels)."""
    return motion_control_error(frames, trajectories, **kwargs)


def background_grid(
    height: int,
    width: int,
    grid_size: int = 16,
    exclude: np.ndarray | None = None,
    exclusion_radius: float | None = None,
) -> np.ndarray:
    """Cell centres of a ``grid_size`` × ``grid_size`` grid (M, 2), minus those within
    ``exclusion_radius`` px (default max(H, W) / 12) of any point of the ``exclude`` tracks
    (T, K, 2) — the region the objects sweep."""
    grid = grid_points(width, height, grid_size)
    if exclude is None or np.asarray(exclude).size == 0:
        return grid
    radius = max(height, width) / 12 if exclusion_radius is None else float(exclusion_radius)
    swept = _densify(np.asarray(exclude, dtype=np.float64), step=max(radius / 2, 1.0))
    nearest = np.min(np.linalg.norm(grid[:, None, :] - swept[None, :, :], axis=-1), axis=1)
    return grid[nearest > radius]


def _densify(tracks: np.ndarray, step: float) -> np.ndarray:
    """All points of (T, K, 2) tracks plus points along each segment at most ``step`` apart → (P, 2)."""
    points = [tracks.reshape(-1, 2)]
    for start, end in zip(tracks[:-1], tracks[1:], strict=True):
        for a, b in zip(start, end, strict=True):
            pieces = int(np.ceil(np.linalg.norm(b - a) / step))
            if pieces > 1:
                fractions = np.linspace(0.0, 1.0, pieces + 1)[1:-1, None]
                points.append(a + fractions * (b - a))
    return np.concatenate(points)


def background_motion(
    frames: np.ndarray,
    exclude_trajectories=None,
    grid_size: int = 16,
    exclusion_radius: float | None = None,
    tracker: Tracker | None = None,
) -> BackgroundMotion:
    """Global (background) motion of ``frames`` (T, H, W, 3) uint8, measured on a grid of points
    away from ``exclude_trajectories`` (the object tracks; TrajectorySet or list of arrays)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise EvaluationError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    num_frames, height, width = frames.shape[:3]
    exclude = None
    if exclude_trajectories is not None and len(
        getattr(exclude_trajectories, "tracks", exclude_trajectories)
    ):
        exclude = resample_tracks(exclude_trajectories, num_frames, width, height)
    grid = background_grid(height, width, grid_size, exclude, exclusion_radius)
    if len(grid) == 0:
        raise EvaluationError("no background grid point is left outside the exclusion radius; lower it")
    result = track(frames, grid, tracker)
    positions, visible = result.positions, result.visible

    steps = np.linalg.norm(np.diff(positions, axis=0), axis=-1)
    both = visible[1:] & visible[:-1]
    step_px = np.array([np.median(s[b]) if b.any() else np.nan for s, b in zip(steps, both, strict=True)])
    displacement = np.full((num_frames, 2), np.nan)
    for t in range(num_frames):
        if visible[t].any():
            displacement[t] = np.median(positions[t, visible[t]] - positions[0, visible[t]], axis=0)
    return BackgroundMotion(
        step_px=step_px,
        path_px=float(np.nansum(step_px)) if not np.isnan(step_px).all() else float("nan"),
        displacement_px=displacement,
        num_points=len(grid),
        points=positions,
        visible=visible,
    )


def background_motion_fraction(
    motion: BackgroundMotion, trajectories: np.ndarray | Sequence, min_path_px: float = MIN_MOVING_PATH_PX
) -> float:
    """Background path length as a fraction of the mean path length of the moving input trajectories
    (T, K, 2); stationary anchors (path below ``min_path_px``) do not count. Raises when none moves."""
    lengths = path_length(np.asarray(trajectories, dtype=np.float64))
    moving = lengths[lengths >= min_path_px]
    if moving.size == 0:
        raise EvaluationError("no input trajectory moves (zero path length); the fraction is undefined")
    return motion.path_px / float(moving.mean())
