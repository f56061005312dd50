"""Draw trajectories over video frames and put videos side by side (for previews and the CLI).

Tracks are drawn progressively: on frame ``t`` each track shows the path travelled up to its
position at ``t`` as a polyline, an arrow for the latest segment and a dot at the current point,
every track in its own colour. Frames are ``uint8`` arrays shaped ``(T, H, W, 3)`` in RGB order.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["draw_paths", "draw_trajectories", "side_by_side", "track_colors"]


def track_colors(count: int) -> list[tuple[int, int, int]]:
    """``count`` clearly distinct, saturated RGB colours (hues spread evenly around the colour wheel)."""
    colors = []
    for index in range(count):
        red, green, blue = colorsys.hsv_to_rgb((index * 0.618034 + 0.05) % 1.0, 0.85, 1.0)
        colors.append((round(red * 255), round(green * 255), round(blue * 255)))
    return colors


OUTLINE = (0, 0, 0)


def _draw_track(
    canvas: np.ndarray, path: np.ndarray, color: tuple[int, int, int], thickness: int, radius: int, shift: int
) -> None:
    """Polyline of ``path`` (fixed-point), an arrow on its last segment and a dot at its end."""
    if len(path) > 1:
        cv2.polylines(canvas, [path.reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA, shift)
        start, end = path[-2], path[-1]
        if np.any(start != end):
            cv2.arrowedLine(
                canvas,
                tuple(map(int, start)),
                tuple(map(int, end)),
                color,
                thickness,
                cv2.LINE_AA,
                shift,
                0.5,
            )
    cv2.circle(canvas, tuple(map(int, path[-1])), radius, color, -1, cv2.LINE_AA, shift)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 shaped (T, H, W, 3), got {array.dtype} {array.shape}")
    return array


def _check_colors(colors: Sequence[tuple[int, int, int]] | None, count: int) -> list[tuple[int, int, int]]:
    if colors is None:
        return track_colors(count)
    if len(colors) != count:
        raise ValueError(f"{count} tracks but {len(colors)} colours; expected one colour per track")
    return [tuple(int(value) for value in color) for color in colors]


def _fixed_point_tracks(tracks: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    points = []
    for index, track in enumerate(tracks):
        array = np.asarray(track, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
            raise ValueError(f"track {index} must be shaped (T, 2), got {array.shape}")
        points.append(np.round(array * scale).astype(np.int32))
    return points


def _default_thickness(height: int, width: int) -> int:
    return max(1, round(np.hypot(height, width) / 128))


def _draw_paths_fixed(
    canvas: np.ndarray,
    paths: Sequence[np.ndarray],
    colors: Sequence[tuple[int, int, int]],
    thickness: int,
    shift: int,
) -> None:
    """Draw fixed-point ``paths`` whole on ``canvas`` (in place), each over a dark under-stroke."""
    radius = thickness + 1
    scale = 1 << shift
    # A dark under-stroke first keeps the coloured strokes readable on any background.
    for stroke, extra in ((OUTLINE, 2), (None, 0)):
        for fixed, color in zip(paths, colors, strict=True):
            _draw_track(
                canvas, fixed, stroke or color, thickness + extra, (radius + extra // 2) * scale, shift
            )


#: Sub-pixel drawing: OpenCV takes fixed-point coordinates with this many fractional bits.
_SHIFT = 4


def draw_paths(
    image: np.ndarray,
    tracks: Sequence[np.ndarray],
    thickness: int | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` (uint8 ``(H, W, 3)``) with every track drawn whole: its path, an arrow on
    its last segment and a dot at its end (a one-point track is a dot). Arguments as in
    :func:`draw_trajectories`."""
    canvas = _check_frames(np.asarray(image)[None])[0].copy()
    height, width, _ = canvas.shape
    paths = _fixed_point_tracks(tracks, 1 << _SHIFT)
    line = _default_thickness(height, width) if thickness is None else thickness
    _draw_paths_fixed(canvas, paths, _check_colors(colors, len(paths)), line, _SHIFT)
    return canvas


def draw_trajectories(
    frames: np.ndarray,
    tracks: Sequence[np.ndarray],
    thickness: int | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """Return a copy of ``frames`` with ``tracks`` drawn on them, progressively.

    ``tracks`` holds one array per track shaped ``(T, 2)`` of ``(x, y)`` pixel positions, one per frame
    (resample drawn tracks to the frame count first, e.g. with ``trajectories.resample_track``).
    Shorter tracks stop at their last point. ``thickness`` defaults to ~1/128 of the frame diagonal.
    ``colors`` gives one RGB colour per track (default: ``track_colors(len(tracks))``).
    """
    video = _check_frames(frames).copy()
    num_frames, height, width, _ = video.shape
    line = _default_thickness(height, width) if thickness is None else thickness
    points = _fixed_point_tracks(tracks, 1 << _SHIFT)
    palette = _check_colors(colors, len(points))
    for frame_index in range(num_frames):
        canvas = np.ascontiguousarray(video[frame_index])
        shown = [fixed[: min(frame_index, len(fixed) - 1) + 1] for fixed in points]
        _draw_paths_fixed(canvas, shown, palette, line, _SHIFT)
        video[frame_index] = canvas
    return video


def side_by_side(*videos: np.ndarray, gap: int = 4, gap_value: int = 255) -> np.ndarray:
    """Concatenate equally sized videos ``(T, H, W, 3)`` left to right with a ``gap``-pixel separator."""
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    arrays = [_check_frames(video) for video in videos]
    if any(array.shape != arrays[0].shape for array in arrays):
        raise ValueError(f"videos must have equal shapes, got {[array.shape for array in arrays]}")
    num_frames, height, _, _ = arrays[0].shape
    separator = np.full((num_frames, height, gap, 3), gap_value, dtype=np.uint8)
    pieces: list[np.ndarray] = []
    for index, array in enumerate(arrays):
        if index and gap:
            pieces.append(separator)
        pieces.append(array)
    return np.concatenate(pieces, axis=2)
