"""Track trust: a tracked point stays visible only while its steps pass two independent checks.

For every step ``t-1 -> t`` where the tracker marks a point visible at both ends:

* **round trip** (``fb``): pyramidal Lucas–Kanade from the tracked position in frame ``t`` back to frame
  ``t-1``, started without a guess; the step fails when it lands more than ``fb_px`` pixels from the
  tracked position in ``t-1`` (or LK does not converge);
* **flow agreement** (``flow``): the step's displacement is compared with the dense optical flow
  (the motion score's backend, DIS by default) at the start position; it fails when they differ by more
  than ``flow_px + flow_rel * |flow|`` pixels.

A point whose step fails is invisible from that frame to the end of the clip (a track that went wrong
once follows something else afterwards). The checks work on any tracker's output (LK or CoTracker).
"""

from __future__ import annotations

import cv2
import numpy as np

from imageconductor.curation.config import TRACK_TRUST_CHECKS
from imageconductor.curation.motion import FlowBackend

__all__ = ["TRACK_TRUST_CHECKS", "round_trip_errors", "sample_flow", "trusted_visibility"]


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of a dense flow (H, W, 2) at ``points`` (N, 2) (x, y); borders replicated."""
    coords = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 1, 2)
    sampled = cv2.remap(
        flow.astype(np.float32),
        coords[..., 0],
        coords[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return sampled.reshape(-1, 2)


def round_trip_errors(
    gray_from: np.ndarray,
    gray_to: np.ndarray,
    points_from: np.ndarray,
    points_to: np.ndarray,
    window: int = 17,
    levels: int = 3,
) -> np.ndarray:
    """Distance from LK-tracking ``points_from`` (in ``gray_from``) to ``gray_to`` to ``points_to``; inf if lost."""
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(
        gray_from,
        gray_to,
        np.ascontiguousarray(points_from, dtype=np.float32).reshape(-1, 1, 2),
        None,
        winSize=(window, window),
        maxLevel=levels,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    )
    errors = np.linalg.norm(tracked.reshape(-1, 2) - points_to, axis=1)
    ok = status.reshape(-1).astype(bool) & np.isfinite(errors)
    return np.where(ok, errors, np.inf)


def trusted_visibility(
    frames: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    *,
    checks: str = "fb+flow",
    fb_px: float = 1.0,
    flow_px: float = 2.0,
    flow_rel: float = 0.25,
    flow_backend: FlowBackend | None = None,
    window: int = 17,
    levels: int = 3,
) -> np.ndarray:
    """Visibility (T, N) bool after the trust ``checks`` (see the module notes).

    ``frames`` (T, H, W, 3) uint8 RGB, ``tracks`` (T, N, 2) pixels, ``visibility`` (T, N) from the tracker.
    ``flow_backend`` is needed for the ``flow`` check.
    """
    if checks not in TRACK_TRUST_CHECKS:
        raise ValueError(f"unknown track trust checks {checks!r}; use one of {TRACK_TRUST_CHECKS}")
    visibility = np.asarray(visibility, dtype=bool)
    if checks == "none" or len(frames) < 2:
        return visibility.copy()
    use_fb, use_flow = checks in ("fb", "fb+flow"), checks in ("flow", "fb+flow")
    if use_flow and flow_backend is None:
        raise ValueError("the flow check needs a flow_backend")
    tracks = np.asarray(tracks, dtype=np.float32)
    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames] if use_fb else []
    failed = np.zeros(visibility.shape, dtype=bool)
    for t in range(1, len(frames)):
        steps = np.flatnonzero(visibility[t - 1] & visibility[t])
        if len(steps) == 0:
            continue
        start, end = tracks[t - 1, steps], tracks[t, steps]
        bad = np.zeros(len(steps), dtype=bool)
        if use_fb:
            bad |= round_trip_errors(grays[t], grays[t - 1], end, start, window, levels) > fb_px
        if use_flow:
            flow = sample_flow(flow_backend(frames[t - 1], frames[t]), start)
            miss = np.linalg.norm((end - start) - flow, axis=1)
            bad |= miss > flow_px + flow_rel * np.linalg.norm(flow, axis=1)
        failed[t, steps[bad]] = True
    return visibility & ~np.logical_or.accumulate(failed, axis=0)
