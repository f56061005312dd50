"""Draw trajectories over video frames, put videos side by side and frames in a strip (for previews, the
CLI and the README).

Tracks are drawn progressively: on frame ``t`` each track shows the path travelled up to its
position at ``t`` as a polyline, an arrow for the latest segment and a dot at the current point,
every track in its own colour. Frames are ``uint8`` arrays shaped ``(T, H, W, 3)`` in RGB order.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "draw_paths",
    "draw_trajectories",
    "side_by_side",
    "strip_frame_indices",
    "strip_scale",
    "track_colors",
    "trajectory_strip",
]


def track_colors(count: int) -> list[tuple[int, int, int]]:
    """``count`` clearly distinct, saturated RGB colours (hues spread evenly around the colour wheel)."""
    colors = []
    for index in range(count):
        red, green, blue = colorsys.hsv_to_rgb((index * 0.618034 + 0.05) % 1.0, 0.85, 1.0)
        colors.append((round(red * 255), round(green * 255), round(blue * 255)))
    return colors


OUTLINE = (0, 0, 0)


def _draw_track(
    canvas: np.ndarray,
    path: np.ndarray,
    color: tuple[int, int, int],
    thickness: int,
    radius: int,
    shift: int,
    head: int | None = None,
) -> None:
    """Polyline of ``path`` (fixed-point), an arrow on its last segment and a dot at its end.

    ``head`` (fixed-point) draws the arrowhead as two barbs of that length (at most the length travelled)
    pointing along the path's last stretch, instead of an arrow over the last segment (whose head is too
    small to see when segments are short)."""
    if len(path) > 1:
        cv2.polylines(canvas, [path.reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA, shift)
        if head is not None:
            barbs = _arrowhead(path, head, 1 << shift)
            if barbs is not None:
                cv2.polylines(canvas, [barbs.reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA, shift)
        else:
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


#: Angle between an arrowhead's barbs and its shaft.
_BARB_ANGLE = np.deg2rad(35.0)


def _arrowhead(path: np.ndarray, head: int, pixel: int) -> np.ndarray | None:
    """``(barb end, tip, barb end)`` of an arrowhead at the path's last point (fixed-point), pointing from
    the latest earlier point at least one ``pixel`` away; None when the path has not moved that far."""
    points = path.astype(np.float64)
    end = points[-1]
    travelled = float(np.hypot(*np.diff(points, axis=0).T).sum())
    behind = next((p for p in points[-2::-1] if np.hypot(*(end - p)) >= pixel), None)
    if behind is None or travelled < pixel:
        return None
    back = (behind - end) / np.hypot(*(behind - end)) * min(head, travelled)
    cos, sin = np.cos(_BARB_ANGLE), np.sin(_BARB_ANGLE)
    left = end + (cos * back[0] - sin * back[1], sin * back[0] + cos * back[1])
    right = end + (cos * back[0] + sin * back[1], -sin * back[0] + cos * back[1])
    return np.round([left, end, right]).astype(np.int32)


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
    head: int | None = None,
) -> None:
    """Draw fixed-point ``paths`` whole on ``canvas`` (in place), each over a dark under-stroke; ``head``
    as in `_draw_track`."""
    radius = thickness + 1
    scale = 1 << shift
    # A dark under-stroke first keeps the coloured strokes readable on any background.
    for stroke, extra in ((OUTLINE, 2), (None, 0)):
        for fixed, color in zip(paths, colors, strict=True):
            _draw_track(
                canvas, fixed, stroke or color, thickness + extra, (radius + extra // 2) * scale, shift, head
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


#: A strip's panels are enlarged (by a whole factor) to at least this height, so that tracks and labels
#: stay legible on a small model's frames.
STRIP_MIN_PANEL_HEIGHT = 128


def strip_frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices from the first frame to the last (``1 <= count <= num_frames``;
    one frame is the first)."""
    if not 1 <= count <= num_frames:
        raise ValueError(f"a strip shows 1 to {num_frames} frames of this video, got {count}")
    if count == 1:
        return [0]
    return [round(i * (num_frames - 1) / (count - 1)) for i in range(count)]


def strip_scale(height: int) -> int:
    """The whole factor a strip enlarges frames ``height`` pixels tall by (`STRIP_MIN_PANEL_HEIGHT`)."""
    return max(1, -(-STRIP_MIN_PANEL_HEIGHT // height))


def trajectory_strip(
    frames: np.ndarray,
    tracks: Sequence[np.ndarray],
    count: int,
    colors: Sequence[tuple[int, int, int]] | None = None,
    plain_row: bool = True,
    gap: int = 4,
    gap_value: int = 255,
) -> np.ndarray:
    """One image of ``count`` evenly spaced frames left to right (`strip_frame_indices`): the top row with
    every track drawn up to that frame's time (its path, an arrowhead at its current point, in its colour)
    and the frame's index in a corner, then (``plain_row``) the same frames as generated.

    Arguments as in `draw_trajectories` (tracks one point per frame, in the frames' pixels). Frames are
    enlarged by `strip_scale` (nearest neighbour: a pixel stays a block of pixels) before drawing, so the
    image is ``count * w + (count - 1) * gap`` wide and ``rows * h + (rows - 1) * gap`` tall, ``w`` and
    ``h`` being the enlarged frame's size. Returns ``uint8`` ``(height, width, 3)``.
    """
    video = _check_frames(frames)
    num_frames, height, width, _ = video.shape
    indices = strip_frame_indices(num_frames, count)
    scale = strip_scale(height)
    big_h, big_w = height * scale, width * scale
    line = _default_thickness(big_h, big_w)
    # pixel (x, y) of the frame covers [x*s, (x+1)*s) of the enlarged one: its centre is at x*s + (s-1)/2
    points = _fixed_point_tracks(
        [np.asarray(t, dtype=np.float64) * scale + (scale - 1) / 2 for t in tracks], 1 << _SHIFT
    )
    palette = _check_colors(colors, len(points))
    head = (3 * line + 4) << _SHIFT
    drawn, plain = [], []
    for index in indices:
        frame = cv2.resize(video[index], (big_w, big_h), interpolation=cv2.INTER_NEAREST)
        plain.append(frame)
        canvas = np.ascontiguousarray(frame.copy())
        shown = [fixed[: min(index, len(fixed) - 1) + 1] for fixed in points]
        _draw_paths_fixed(canvas, shown, palette, line, _SHIFT, head)
        _label(canvas, str(index))
        drawn.append(canvas)
    rows = [drawn, plain] if plain_row else [drawn]
    return _grid(rows, gap, gap_value)


def _label(canvas: np.ndarray, text: str) -> None:
    """``text`` in the top-left corner, white over a dark outline (in place)."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, canvas.shape[0] / 320)
    (_, text_height), _ = cv2.getTextSize(text, font, size, 1)
    origin = (3, 3 + text_height)
    cv2.putText(canvas, text, origin, font, size, OUTLINE, 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, font, size, (255, 255, 255), 1, cv2.LINE_AA)


def _grid(rows: list[list[np.ndarray]], gap: int, gap_value: int) -> np.ndarray:
    """Equal-size images in rows, ``gap`` pixels of ``gap_value`` between them."""
    height, width, _ = rows[0][0].shape
    columns = len(rows[0])
    out = np.full(
        (len(rows) * height + (len(rows) - 1) * gap, columns * width + (columns - 1) * gap, 3),
        gap_value,
        dtype=np.uint8,
    )
    for row, images in enumerate(rows):
        for column, image in enumerate(images):
            top, left = row * (height + gap), column * (width + gap)
            out[top : top + height, left : left + width] = image
    return out
