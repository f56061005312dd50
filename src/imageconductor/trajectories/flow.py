"""Tracks → the motion ControlNet's flow condition ``(1, 2, L, H, W)``.

Default options reproduce the released code: per frame, the displacement to the next point is written
at the single pixel ``[int(y), int(x)]`` of the current point (later tracks overwrite earlier ones,
nothing is summed), each frame is filtered with a 99×99 Gaussian (σ = 10, normalised to sum 1) by
``cv2.filter2D`` with its default border (``BORDER_REFLECT_101``), and a zero frame is put first.
The work is done in float64, as there, and the result is cast to float32.

A model may be trained with another encoding (`FlowEncoding`): the embedded default model, 96×64 and
trained for an hour, uses a blur scaled to its frame and a kernel whose peak is 1, so that one drawn
point reaches the network with its displacement in pixels instead of 1/628 of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import cv2
import numpy as np
import torch

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.format import MAX_TRACKS, TrajectorySet, parse_trajectories
from imageconductor.trajectories.resample import check_num_frames, resample_track

OFFICIAL_KERNEL_SIZE = 99
OFFICIAL_BLUR_SIGMA = 10.0
REFERENCE_SIZE = (384, 256)
"""(width, height) at which the official kernel applies unchanged when ``blur_sigma="auto"``."""

_PLANES_PER_CALL = 4

OutOfBounds = Literal["clip", "skip"]
BlurSigma = float | Literal["auto"] | None
KernelNormalization = Literal["sum", "peak"]
KERNEL_NORMALIZATIONS: tuple[str, ...] = get_args(KernelNormalization)


def _check_size(height: int, width: int) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise TrajectoryError(f"{name} is {value!r}; expected a positive whole number")
    return int(height), int(width)


def gaussian_kernel(
    kernel_size: int = OFFICIAL_KERNEL_SIZE,
    sigma: float = OFFICIAL_BLUR_SIGMA,
    normalization: KernelNormalization = "sum",
) -> np.ndarray:
    """Isotropic 2-D Gaussian ``(kernel_size, kernel_size)`` float64 kernel normalised to sum 1
    (``normalization="sum"``, the released code) or to a centre value of 1 (``"peak"``)."""
    if normalization not in KERNEL_NORMALIZATIONS:
        raise TrajectoryError(
            f"kernel normalization is {normalization!r}; expected one of {list(KERNEL_NORMALIZATIONS)}"
        )
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
        raise TrajectoryError(f"kernel_size is {kernel_size!r}; expected a positive odd whole number")
    if kernel_size % 2 == 0:
        raise TrajectoryError(f"kernel_size is {kernel_size}; expected an odd number (the kernel is centred)")
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, (int, float, np.number))
        or not np.isfinite(sigma)
        or sigma <= 0
    ):
        raise TrajectoryError(f"blur sigma is {sigma!r}; expected a positive number")
    column = cv2.getGaussianKernel(int(kernel_size), float(sigma), cv2.CV_64F)
    kernel = column @ column.T
    return kernel / kernel[kernel_size // 2, kernel_size // 2] if normalization == "peak" else kernel


def blur_parameters(
    height: int,
    width: int,
    blur_sigma: BlurSigma = OFFICIAL_BLUR_SIGMA,
    kernel_size: int = OFFICIAL_KERNEL_SIZE,
) -> tuple[float, int] | None:
    """Resolve the blur options to ``(sigma, kernel_size)``, or ``None`` for no blur.

    ``blur_sigma="auto"`` scales the official σ = 10 and the given kernel size by
    ``s = min(height / 256, width / 384)`` (the kernel size rounded to the nearest odd number), so the
    blur covers the same fraction of the image at any resolution; at 384×256 it is the official kernel.
    ``blur_sigma=None`` or ``0`` turns the blur off.
    """
    height, width = _check_size(height, width)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
        raise TrajectoryError(f"kernel_size is {kernel_size!r}; expected a positive odd whole number")
    if blur_sigma is None:
        return None
    if isinstance(blur_sigma, str):
        if blur_sigma != "auto":
            raise TrajectoryError(f"blur_sigma is {blur_sigma!r}; expected a number, 'auto' or None")
        scale = min(height / REFERENCE_SIZE[1], width / REFERENCE_SIZE[0])
        return OFFICIAL_BLUR_SIGMA * scale, max(1, 2 * round((kernel_size * scale - 1) / 2) + 1)
    if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, (int, float, np.number)):
        raise TrajectoryError(f"blur_sigma is {blur_sigma!r}; expected a number, 'auto' or None")
    if blur_sigma == 0:
        return None
    return float(blur_sigma), int(kernel_size)


def gaussian_blur_maps(
    maps: np.ndarray,
    sigma: float = OFFICIAL_BLUR_SIGMA,
    kernel_size: int = OFFICIAL_KERNEL_SIZE,
    normalization: KernelNormalization = "sum",
) -> np.ndarray:
    """Filter every ``(H, W)`` plane of ``maps (..., H, W)`` with the Gaussian (float64, reflect-101 border)."""
    kernel = gaussian_kernel(kernel_size, sigma, normalization)
    maps = np.asarray(maps, dtype=np.float64)
    planes = maps.reshape(-1, *maps.shape[-2:])
    blurred = np.empty_like(planes)
    # OpenCV filters the channels of one image independently; 4 planes per call is ~1.7x faster than one.
    for first in range(0, len(planes), _PLANES_PER_CALL):
        chunk = np.ascontiguousarray(planes[first : first + _PLANES_PER_CALL].transpose(1, 2, 0))
        result = cv2.filter2D(chunk, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT_101)
        blurred[first : first + _PLANES_PER_CALL] = result.reshape(chunk.shape).transpose(2, 0, 1)
    return blurred.reshape(maps.shape)


def _check_strengths(strengths: Sequence[float] | np.ndarray | None, count: int) -> np.ndarray | None:
    if strengths is None:
        return None
    try:
        values = np.asarray(strengths, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TrajectoryError("strengths must be numbers, one per track") from None
    if len(values) != count:
        raise TrajectoryError(f"{len(values)} strengths for {count} tracks; expected one per track")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TrajectoryError(f"track {i}: strength is {values[i]}; expected a finite number >= 0")
    return values


def _scatter_displacements(
    positions: np.ndarray,
    step_valid: np.ndarray,
    height: int,
    width: int,
    strengths: np.ndarray | None,
    out_of_bounds: OutOfBounds,
) -> np.ndarray:
    """Core writer: positions ``(T, N, 2)``, step_valid ``(T-1, N)`` → maps ``(T-1, 2, H, W)`` float64.

    Step ``i`` of track ``n`` writes ``positions[i+1, n] - positions[i, n]`` at ``[int(y_i), int(x_i)]``.
    Conflicts within a frame go to the highest track index (the released code's loop order).
    """
    if out_of_bounds not in ("clip", "skip"):
        raise TrajectoryError(f"out_of_bounds is {out_of_bounds!r}; expected 'clip' or 'skip'")
    steps, count = positions.shape[0] - 1, positions.shape[1]
    maps = np.zeros((steps, 2, height, width), dtype=np.float64)
    if steps == 0 or count == 0:
        return maps
    start = np.where(step_valid[..., None], positions[:-1], 0.0)
    end = np.where(step_valid[..., None], positions[1:], 0.0)
    delta = end - start
    if strengths is not None:
        delta = delta * strengths[None, :, None]
    x, y = start[..., 0], start[..., 1]
    valid = step_valid.copy()
    if out_of_bounds == "skip":
        valid &= (x > -1) & (x < width) & (y > -1) & (y < height)
    x = np.clip(np.where(valid, x, 0.0), 0, width - 1)
    y = np.clip(np.where(valid, y, 0.0), 0, height - 1)
    column = np.trunc(x).astype(np.int64)
    row = np.trunc(y).astype(np.int64)
    frame = np.broadcast_to(np.arange(steps)[:, None], (steps, count))
    # Track-major order, as the released loops: the last write to a pixel wins.
    order = (valid.T, frame.T, row.T, column.T, delta[..., 0].T, delta[..., 1].T)
    valid, frame, row, column, dx, dy = (a.reshape(-1) for a in order)
    frame, row, column, dx, dy = frame[valid], row[valid], column[valid], dx[valid], dy[valid]
    pixel = (frame * height + row) * width + column
    _, first_from_end = np.unique(pixel[::-1], return_index=True)
    keep = len(pixel) - 1 - first_from_end
    frame, row, column = frame[keep], row[keep], column[keep]
    maps[frame, 0, row, column] = dx[keep]
    maps[frame, 1, row, column] = dy[keep]
    return maps


def displacement_maps(
    resampled_tracks: Sequence[np.ndarray] | np.ndarray,
    height: int,
    width: int,
    *,
    strengths: Sequence[float] | None = None,
    out_of_bounds: OutOfBounds = "clip",
) -> np.ndarray:
    """Unblurred frame-to-frame displacement maps ``(L-1, 2, H, W)`` float64 (channel 0 = dx, 1 = dy).

    Args:
        resampled_tracks: tracks already resampled to L points each, ``(N, L, 2)``.
        strengths: optional per-track factor on the displacements.
        out_of_bounds: what to do with a start point whose truncated pixel falls outside the image:
            ``"clip"`` writes it at the nearest edge pixel (validated tracks can only be off by less
            than one pixel, e.g. a point on the far edge ``x = W``), ``"skip"`` drops that displacement.
            The released code has no bounds check (it crashes or wraps around).
    """
    height, width = _check_size(height, width)
    try:
        tracks = np.asarray(resampled_tracks, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TrajectoryError(f"resampled tracks are not a numeric (N, L, 2) array: {error}") from None
    if tracks.ndim != 3 or tracks.shape[-1] != 2 or (len(tracks) and tracks.shape[1] < 2):
        raise TrajectoryError(f"resampled tracks must have shape (N, L >= 2, 2); got {tracks.shape}")
    if not np.isfinite(tracks).all():
        raise TrajectoryError("resampled tracks contain non-finite coordinates")
    positions = tracks.transpose(1, 0, 2)
    step_valid = np.ones((positions.shape[0] - 1, positions.shape[1]), dtype=bool)
    values = _check_strengths(strengths, positions.shape[1])
    return _scatter_displacements(positions, step_valid, height, width, values, out_of_bounds)


def _condition_tensor(
    maps: np.ndarray,
    height: int,
    width: int,
    blur_sigma: BlurSigma,
    kernel_size: int,
    kernel_normalization: KernelNormalization,
) -> torch.Tensor:
    """Blur ``(L-1, 2, H, W)`` maps, prepend a zero frame and return ``(1, 2, L, H, W)`` float32."""
    blur = blur_parameters(height, width, blur_sigma, kernel_size)
    if blur is not None:
        maps = gaussian_blur_maps(maps, *blur, kernel_normalization)
    frames = np.concatenate([np.zeros_like(maps[:1]), maps], axis=0)
    condition = frames.transpose(1, 0, 2, 3)[None].astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(condition))


def _as_trajectory_set(tracks: Any, height: int, width: int, max_tracks: int | None) -> TrajectorySet:
    if isinstance(tracks, TrajectorySet):
        if max_tracks is not None and len(tracks) > max_tracks:
            raise TrajectoryError(f"{len(tracks)} tracks given; at most {max_tracks} are allowed")
        return tracks.rescaled(width, height)
    return parse_trajectories(tracks, image_size=(width, height), max_tracks=max_tracks)


def flow_condition(
    tracks: Any,
    num_frames: int,
    height: int,
    width: int,
    *,
    strengths: Sequence[float] | None = None,
    blur_sigma: BlurSigma = OFFICIAL_BLUR_SIGMA,
    kernel_size: int = OFFICIAL_KERNEL_SIZE,
    kernel_normalization: KernelNormalization = "sum",
    out_of_bounds: OutOfBounds = "clip",
    max_tracks: int | None = MAX_TRACKS,
) -> torch.Tensor:
    """The motion ControlNet's condition for drawn tracks: ``(1, 2, num_frames, height, width)`` float32.

    Args:
        tracks: a list of tracks of ``[x, y]`` pixels in the ``width`` x ``height`` frame (the official
            JSON layout), or a :class:`TrajectorySet` (rescaled from its ``image_size``; its strengths
            are used unless ``strengths`` is given), or anything :func:`parse_trajectories` accepts.
        num_frames: L, the number of video frames (each track is PCHIP-resampled to L points).
        strengths: optional per-track factor on the displacements.
        blur_sigma: Gaussian σ (official 10), ``"auto"`` to scale σ and kernel with the resolution
            (see :func:`blur_parameters`), or ``None`` for the raw sparse maps.
        kernel_size: Gaussian kernel size (official 99).
        kernel_normalization: ``"sum"`` (official: the kernel sums to 1) or ``"peak"`` (centre value 1).
        out_of_bounds: see :func:`displacement_maps`.
        max_tracks: largest allowed number of tracks (``None``: no limit).

    Frame 0 is all zeros; frame t holds the t-1 → t displacement (channel 0 = dx, 1 = dy).
    """
    num_frames = check_num_frames(num_frames)
    height, width = _check_size(height, width)
    trajectories = _as_trajectory_set(tracks, height, width, max_tracks)
    if strengths is None and any(s != 1.0 for s in trajectories.strengths):
        strengths = trajectories.strengths
    resampled = [resample_track(track, num_frames) for track in trajectories.tracks]
    maps = displacement_maps(resampled, height, width, strengths=strengths, out_of_bounds=out_of_bounds)
    return _condition_tensor(maps, height, width, blur_sigma, kernel_size, kernel_normalization)


def check_dense_tracks(tracks: Any, visibility: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate dense per-frame tracks ``(T, N, 2)`` and visibility ``(T, N)``."""
    try:
        positions = np.asarray(tracks, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TrajectoryError(f"dense tracks are not a numeric (T, N, 2) array: {error}") from None
    if positions.ndim != 3 or positions.shape[-1] != 2 or positions.shape[0] < 2:
        raise TrajectoryError(f"dense tracks must have shape (T >= 2, N, 2); got {positions.shape}")
    if visibility is None:
        visible = np.ones(positions.shape[:2], dtype=bool)
    else:
        visible = np.asarray(visibility)
        if visible.shape != positions.shape[:2]:
            raise TrajectoryError(f"visibility has shape {visible.shape}; expected {positions.shape[:2]}")
        visible = visible.astype(bool)
    bad = visible & ~np.isfinite(positions).all(axis=-1)
    if bad.any():
        frame, track = (int(i) for i in np.argwhere(bad)[0])
        raise TrajectoryError(f"track {track}, frame {frame}: position is not finite but marked visible")
    return positions, visible


def displacement_maps_from_dense(
    tracks: np.ndarray,
    height: int,
    width: int,
    visibility: np.ndarray | None = None,
    *,
    strengths: Sequence[float] | None = None,
    out_of_bounds: OutOfBounds = "skip",
) -> np.ndarray:
    """Unblurred maps ``(T-1, 2, H, W)`` from per-frame positions ``(T, N, 2)``, no resampling.

    A step is skipped when the point is invisible at either end; by default also when its start
    pixel lies outside the image (points leaving the frame).
    """
    height, width = _check_size(height, width)
    positions, visible = check_dense_tracks(tracks, visibility)
    step_valid = visible[:-1] & visible[1:]
    values = _check_strengths(strengths, positions.shape[1])
    return _scatter_displacements(positions, step_valid, height, width, values, out_of_bounds)


def flow_condition_from_dense(
    tracks: np.ndarray,
    height: int,
    width: int,
    visibility: np.ndarray | None = None,
    *,
    strengths: Sequence[float] | None = None,
    blur_sigma: BlurSigma = OFFICIAL_BLUR_SIGMA,
    kernel_size: int = OFFICIAL_KERNEL_SIZE,
    kernel_normalization: KernelNormalization = "sum",
    out_of_bounds: OutOfBounds = "skip",
) -> torch.Tensor:
    """The condition ``(1, 2, T, H, W)`` for tracks that already have one position per frame.

    For training clips whose tracks come from a point tracker: ``tracks (T, N, 2)`` in pixels of the
    ``width`` x ``height`` frame, optional ``visibility (T, N)``. Same writing, blur and zero first
    frame as :func:`flow_condition`, which it equals for tracks that are already L points long.
    """
    maps = displacement_maps_from_dense(
        tracks, height, width, visibility, strengths=strengths, out_of_bounds=out_of_bounds
    )
    return _condition_tensor(maps, height, width, blur_sigma, kernel_size, kernel_normalization)


@dataclass(frozen=True)
class FlowEncoding:
    """How a motion ControlNet expects displacements to be blurred: part of a trained model's contract.

    The defaults are the released encoding (σ = 10, 99×99 kernel summing to 1). ``blur_sigma`` may be
    ``None`` (no blur) or ``"auto"`` (see `blur_parameters`). ``as_kwargs()`` gives the keyword arguments
    of `flow_condition` / `flow_condition_from_dense`.
    """

    blur_sigma: float | str | None = OFFICIAL_BLUR_SIGMA
    kernel_size: int = OFFICIAL_KERNEL_SIZE
    kernel_normalization: str = "sum"

    def __post_init__(self) -> None:
        blur = blur_parameters(REFERENCE_SIZE[1], REFERENCE_SIZE[0], self.blur_sigma, self.kernel_size)
        sigma, size = blur if blur is not None else (1.0, self.kernel_size)
        gaussian_kernel(size, sigma, self.kernel_normalization)  # validates σ, size and normalisation

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FlowEncoding:
        """``None`` or ``{}`` → the released encoding; unknown keys raise `TrajectoryError`."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"blur_sigma", "kernel_size", "kernel_normalization"})
        if unknown:
            raise TrajectoryError(f"unknown flow encoding key(s) {unknown}")
        return cls(**data)

    def as_kwargs(self) -> dict[str, Any]:
        """``blur_sigma``, ``kernel_size``, ``kernel_normalization`` as keyword arguments."""
        return asdict(self)

    @property
    def is_official(self) -> bool:
        """Whether this is the released encoding."""
        return self == RELEASED_FLOW_ENCODING


#: The encoding of the released code (and the default wherever an encoding is optional).
RELEASED_FLOW_ENCODING = FlowEncoding()
