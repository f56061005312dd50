"""Perturbed synthetic clips for stress-testing point trackers: flicker, noise, fast motion, occlusion.

Each perturbation keeps the exact ground truth: frame-level changes (flicker, noise) do not move any
surface, fast motion is rendered by the world itself, and an injected occluder's pixels are recorded so
that points under it count as hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imageconductor.synthetic.random_spec import random_clip_spec
from imageconductor.synthetic.world import SyntheticClip, render_clip

PERTURBATIONS = ("none", "flicker", "noise", "fast", "occlusion")
"""Names :func:`perturbed_clip` accepts."""


@dataclass
class PerturbedClip:
    """A rendered clip, the frames after the perturbation, and the occluder's pixels (T, H, W) if any."""

    clip: SyntheticClip
    frames: np.ndarray
    covered: np.ndarray | None

    def track_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact tracks of ``points`` on frame 0: positions (T, N, 2) and visibility (T, N), occluder included."""
        positions, visible = self.clip.track_points(points, frame=0)
        if self.covered is not None:
            height, width = self.covered.shape[1:]
            for t in range(len(positions)):
                x = np.clip(np.round(positions[t, :, 0]).astype(int), 0, width - 1)
                y = np.clip(np.round(positions[t, :, 1]).astype(int), 0, height - 1)
                visible[t] &= ~self.covered[t, y, x]
        return positions, visible


def _flicker(frames: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    gains = 1.0 + amount * rng.uniform(-1.0, 1.0, size=len(frames))
    return np.clip(frames.astype(np.float32) * gains[:, None, None, None], 0, 255).astype(np.uint8)


def _noise(frames: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    noisy = frames.astype(np.float32) + rng.normal(0.0, sigma, size=frames.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _occlude(frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A textured bar (1/4 of the width, full height) sweeping across the frame from one side to the other."""
    num_frames, height, width = frames.shape[:3]
    bar_width = width // 4
    texture = cv2.resize(
        rng.integers(0, 256, size=(height // 4, bar_width // 4, 3), dtype=np.uint8),
        (bar_width, height),
        interpolation=cv2.INTER_LINEAR,
    )
    start, end = -bar_width, width
    if rng.random() < 0.5:
        start, end = end, start
    out = frames.copy()
    covered = np.zeros((num_frames, height, width), dtype=bool)
    for t in range(num_frames):
        left = int(round(start + (end - start) * t / max(num_frames - 1, 1)))
        lo, hi = max(left, 0), min(left + bar_width, width)
        if lo < hi:
            out[t, :, lo:hi] = texture[:, lo - left : hi - left]
            covered[t, :, lo:hi] = True
    return out, covered


def perturbed_clip(
    seed: int,
    perturbation: str,
    *,
    num_frames: int = 32,
    width: int = 384,
    height: int = 256,
    flicker: float = 0.25,
    noise_sigma: float = 12.0,
    fast_scale: float = 5.0,
) -> PerturbedClip:
    """Render the synthetic clip of ``seed`` (kind drawn by the world) under one of :data:`PERTURBATIONS`.

    ``flicker``: per-frame brightness gain drawn from ``1 ± flicker``; ``noise_sigma``: Gaussian pixel
    noise (grey levels), independent per frame; ``fast_scale``: ``motion_scale`` of the render (every
    camera and sprite speed multiplied); ``occlusion``: a textured bar sweeping across the frame.
    """
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturbation!r}; use one of {PERTURBATIONS}")
    scale = fast_scale if perturbation == "fast" else 1.0
    spec = random_clip_spec(seed, num_frames=num_frames, width=width, height=height, motion_scale=scale)
    clip = render_clip(spec)
    rng = np.random.default_rng([seed, PERTURBATIONS.index(perturbation)])
    frames, covered = clip.frames, None
    if perturbation == "flicker":
        frames = _flicker(frames, rng, flicker)
    elif perturbation == "noise":
        frames = _noise(frames, rng, noise_sigma)
    elif perturbation == "occlusion":
        frames, covered = _occlude(frames, rng)
    return PerturbedClip(clip, frames, covered)


@dataclass(frozen=True)
class TrackErrorShares:
    """How trustworthy a tracker's visible points are, against the exact truth.

    ``off_3px`` / ``off_10px``: share of visible steps (point marked visible in a frame after the first)
    whose position is more than 3 / 10 px from the truth, or whose point is truly hidden. ``kept``: share
    of truly visible steps the tracker marks visible. ``steps``: number of visible steps.
    """

    steps: int
    off_3px: float
    off_10px: float
    kept: float


def track_error_shares(
    tracks: np.ndarray, visibility: np.ndarray, truth: np.ndarray, true_visible: np.ndarray
) -> TrackErrorShares:
    """Compare tracks (T, N, 2) and visibility (T, N) with the truth (frames after the first only)."""
    marked = np.asarray(visibility, bool)[1:]
    truly = np.asarray(true_visible, bool)[1:]
    error = np.linalg.norm(np.asarray(tracks, np.float64)[1:] - truth[1:], axis=2)
    error = np.where(truly, error, np.inf)[marked]
    steps = int(marked.sum())
    return TrackErrorShares(
        steps=steps,
        off_3px=float((error > 3).mean()) if steps else 0.0,
        off_10px=float((error > 10).mean()) if steps else 0.0,
        kept=float((marked & truly).sum() / max(int(truly.sum()), 1)),
    )
