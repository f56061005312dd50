"""Grid point tracking: OpenCV pyramidal Lucas-Kanade with a forward-backward check (default) or CoTracker."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from imageconductor.curation.errors import BackendUnavailableError


class PointTracker(Protocol):
    """Tracks query points given on frame 0 through a clip.

    ``frames`` (T, H, W, 3) uint8 RGB, ``points`` (N, 2) float (x, y) -> tracks (T, N, 2) float32 in
    pixels and visibility (T, N) bool. Tracks stay defined when a point is not visible.
    """

    def __call__(self, frames: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class LucasKanadeTracker:
    """Frame-to-frame pyramidal LK with a forward-backward consistency check.

    A point is visible while it stays inside the frame, LK converges both ways with a mean absolute
    window difference of at most ``max_patch_error`` grey levels, and the forward-backward error is below
    ``fb_threshold`` pixels. Once lost it stays invisible (no re-detection), and its
    position is carried on by the median motion of its ``neighbours`` nearest visible points, so that
    tracks leaving the frame keep moving with the scene.

    With ``refine`` (default), each visible point is then matched directly against frame 0, after
    undoing the global affine motion fitted (RANSAC) to the chained tracks: this removes the drift that
    frame-to-frame chaining accumulates (notably under zoom). A refined position replaces the chained
    one only when it passes the forward-backward check and lies within ``refine_radius`` pixels of it.
    """

    def __init__(
        self,
        window: int = 17,
        levels: int = 3,
        fb_threshold: float = 1.0,
        neighbours: int = 8,
        border: float = 0.0,
        refine: bool = True,
        refine_radius: float = 2.0,
        max_patch_error: float = 12.0,
    ) -> None:
        self.window = window
        self.levels = levels
        self.fb_threshold = fb_threshold
        self.neighbours = neighbours
        self.border = border
        self.refine = refine
        self.refine_radius = refine_radius
        self.max_patch_error = max_patch_error
        self._criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)

    def _lk(
        self, gray0: np.ndarray, gray1: np.ndarray, pts: np.ndarray, guess: np.ndarray | None, levels=None
    ):
        flags = cv2.OPTFLOW_USE_INITIAL_FLOW if guess is not None else 0
        nxt, status, error = cv2.calcOpticalFlowPyrLK(
            gray0,
            gray1,
            np.ascontiguousarray(pts, dtype=np.float32).reshape(-1, 1, 2),
            None if guess is None else np.ascontiguousarray(guess, dtype=np.float32).reshape(-1, 1, 2),
            winSize=(self.window, self.window),
            maxLevel=self.levels if levels is None else levels,
            criteria=self._criteria,
            flags=flags,
        )
        # ``error`` is the mean absolute grey-level difference of the matched windows.
        ok = status.reshape(-1).astype(bool) & (error.reshape(-1) <= self.max_patch_error)
        return nxt.reshape(-1, 2), ok

    def __call__(self, frames: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        num_frames, height, width = frames.shape[:3]
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        tracks = np.zeros((num_frames, len(points), 2), dtype=np.float32)
        visible = np.zeros((num_frames, len(points)), dtype=bool)
        tracks[0] = points
        alive = self._inside(points, width, height)
        visible[0] = alive
        grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        gray_prev = grays[0]
        for t in range(1, num_frames):
            gray = grays[t]
            current = tracks[t - 1].copy()
            moved = current.copy()
            if alive.any():
                p0 = current[alive]
                p1, ok_fwd = self._lk(gray_prev, gray, p0, None)
                back, ok_bwd = self._lk(gray, gray_prev, p1, p0)
                fb_error = np.linalg.norm(back - p0, axis=1)
                ok = ok_fwd & ok_bwd & (fb_error < self.fb_threshold) & np.isfinite(p1).all(axis=1)
                moved[alive] = np.where(np.isfinite(p1), p1, p0)
                still = np.zeros_like(alive)
                still[np.flatnonzero(alive)[ok]] = True
                still &= self._inside(moved, width, height)
                alive = still
            lost = ~alive
            if lost.any():
                moved[lost] = current[lost] + self._neighbour_motion(current, moved, alive, lost)
            tracks[t] = moved
            visible[t] = alive
            gray_prev = gray
        if self.refine:
            self._refine_against_first(grays, tracks, visible)
        return tracks, visible

    def _refine_against_first(self, grays: list[np.ndarray], tracks: np.ndarray, visible: np.ndarray) -> None:
        height, width = grays[0].shape
        first = tracks[0]
        for t in range(1, len(grays)):
            mask = np.flatnonzero(visible[t])
            if len(mask) < 6:
                continue
            affine, _ = cv2.estimateAffine2D(
                first[mask], tracks[t, mask], method=cv2.RANSAC, ransacReprojThreshold=1.0
            )
            if affine is None:
                continue
            # warped(x) = frame_t(affine @ x): frame t brought back into frame 0's geometry.
            warped = cv2.warpAffine(
                grays[t],
                affine,
                (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            inverse = cv2.invertAffineTransform(affine)
            guess = tracks[t, mask] @ inverse[:, :2].T + inverse[:, 2]
            p0 = first[mask]
            # After the alignment only a small residual is left: one pyramid level is enough.
            matched, ok_fwd = self._lk(grays[0], warped, p0, guess, levels=1)
            back, ok_bwd = self._lk(warped, grays[0], matched, p0, levels=1)
            refined = matched @ affine[:, :2].T + affine[:, 2]
            ok = (
                ok_fwd
                & ok_bwd
                & (np.linalg.norm(back - p0, axis=1) < self.fb_threshold)
                & (np.linalg.norm(refined - tracks[t, mask], axis=1) < self.refine_radius)
                & np.isfinite(refined).all(axis=1)
            )
            tracks[t, mask[ok]] = refined[ok]

    def _inside(self, pts: np.ndarray, width: int, height: int) -> np.ndarray:
        b = self.border
        return (
            (pts[:, 0] >= b) & (pts[:, 0] <= width - 1 - b) & (pts[:, 1] >= b) & (pts[:, 1] <= height - 1 - b)
        )

    def _neighbour_motion(self, current: np.ndarray, moved: np.ndarray, alive: np.ndarray, lost: np.ndarray):
        if not alive.any():
            return np.zeros((int(lost.sum()), 2), dtype=np.float32)
        source = current[alive]
        motion = moved[alive] - source
        distance = np.linalg.norm(current[lost][:, None, :] - source[None, :, :], axis=2)
        k = min(self.neighbours, len(source))
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        return np.median(motion[nearest], axis=1).astype(np.float32)


class CoTrackerTracker:
    """CoTracker from the optional ``cotracker`` package and a local checkpoint file (nothing downloaded)."""

    def __init__(self, checkpoint: str | Path | None, device: str = "cpu") -> None:
        try:
            from cotracker.predictor import CoTrackerPredictor
        except ImportError as exc:
            raise BackendUnavailableError(
                "the CoTracker backend needs the `cotracker` package (install it from its repository; it is "
                "not on PyPI) or use --tracker lk"
            ) from exc
        if not checkpoint:
            raise BackendUnavailableError(
                "the CoTracker backend needs --cotracker-checkpoint PATH (a local .pth file)"
            )
        path = Path(checkpoint)
        if not path.is_file():
            raise BackendUnavailableError(f"CoTracker checkpoint not found: {path}")
        self._model = CoTrackerPredictor(checkpoint=str(path)).to(device).eval()
        self._device = device

    def __call__(self, frames: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:

        video = (
            torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None].float().to(self._device)
        )
        queries = np.concatenate(
            [np.zeros((len(points), 1), np.float32), np.asarray(points, np.float32)], axis=1
        )
        query_tensor = torch.from_numpy(queries)[None].to(self._device)
        with torch.inference_mode():
            tracks, visibility = self._model(video, queries=query_tensor)
        return (
            tracks[0].float().cpu().numpy().astype(np.float32),
            visibility[0].cpu().numpy().astype(bool).reshape(len(frames), len(points)),
        )


def make_tracker(
    name: str = "lk",
    *,
    window: int = 17,
    levels: int = 3,
    fb_threshold: float = 1.0,
    max_patch_error: float = 12.0,
    cotracker_checkpoint: str | Path | None = None,
) -> PointTracker:
    """Build the named tracker: ``"lk"`` (default) or ``"cotracker"`` (needs the package and a checkpoint)."""
    if name == "lk":
        return LucasKanadeTracker(
            window=window, levels=levels, fb_threshold=fb_threshold, max_patch_error=max_patch_error
        )
    if name == "cotracker":
        return CoTrackerTracker(cotracker_checkpoint)
    raise ValueError(f"unknown tracker {name!r}: use 'lk' or 'cotracker'")
