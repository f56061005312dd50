"""Clip geometry: short-side resize, a seeded temporal window with a random stride, centre crop."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imageconductor.curation.errors import SkipInput


@dataclass(frozen=True)
class Window:
    """``num_frames`` frames starting at ``start`` every ``stride`` frames (indices into the source)."""

    start: int
    stride: int
    num_frames: int

    @property
    def indices(self) -> np.ndarray:
        return self.start + self.stride * np.arange(self.num_frames)

    @property
    def span(self) -> int:
        return (self.num_frames - 1) * self.stride + 1


def choose_window(
    scene: tuple[int, int], num_frames: int, stride_min: int, stride_max: int, rng: np.random.Generator
) -> Window:
    """Pick a stride uniformly among those in [stride_min, stride_max] that fit the scene, then a start.

    Raises ``SkipInput("too_short")`` when even ``stride_min`` does not fit.
    """
    start, end = scene
    length = end - start
    largest = (length - 1) // (num_frames - 1) if num_frames > 1 else stride_max
    feasible_max = min(stride_max, largest)
    if feasible_max < stride_min:
        raise SkipInput(
            "too_short",
            f"longest scene has {length} frames; {num_frames} frames at stride {stride_min} need "
            f"{(num_frames - 1) * stride_min + 1}",
        )
    stride = int(rng.integers(stride_min, feasible_max + 1))
    span = (num_frames - 1) * stride + 1
    offset = int(rng.integers(0, length - span + 1))
    return Window(start=start + offset, stride=stride, num_frames=num_frames)


def cover_size(
    frame_height: int, frame_width: int, short_side: int, width: int, height: int
) -> tuple[int, int]:
    """Size (w, h) with shorter side ``short_side``, enlarged if needed so a ``width`` x ``height`` crop fits.

    A 16:9 or 3:2 source gets exactly short side 256; a 4:3 or portrait source is scaled up just enough
    to cover the 384x256 crop instead of being dropped.
    """
    scale = max(short_side / min(frame_height, frame_width), width / frame_width, height / frame_height)
    return max(width, round(frame_width * scale)), max(height, round(frame_height * scale))


def resize_frames(frames: np.ndarray, short_side: int, width: int, height: int) -> np.ndarray:
    """Resize every frame of (T, H, W, 3) to :func:`cover_size`."""
    target_w, target_h = cover_size(frames.shape[1], frames.shape[2], short_side, width, height)
    if (target_w, target_h) == (frames.shape[2], frames.shape[1]):
        return frames
    interpolation = cv2.INTER_AREA if target_w < frames.shape[2] else cv2.INTER_LINEAR
    return np.stack(
        [cv2.resize(frame, (target_w, target_h), interpolation=interpolation) for frame in frames]
    )


def center_crop_box(
    frame_height: int, frame_width: int, width: int, height: int
) -> tuple[int, int, int, int]:
    """The (x0, y0, width, height) of a centred crop; raises SkipInput when the frame is too small."""
    if frame_width < width or frame_height < height:
        raise SkipInput(
            "too_small",
            f"frames are {frame_width}x{frame_height} after resizing; crop needs {width}x{height}",
        )
    return ((frame_width - width) // 2, (frame_height - height) // 2, width, height)


def center_crop(frames: np.ndarray, width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Centre-crop (T, H, W, 3) frames to ``width`` x ``height``; returns the crop and its box."""
    x0, y0, w, h = center_crop_box(frames.shape[1], frames.shape[2], width, height)
    return np.ascontiguousarray(frames[:, y0 : y0 + h, x0 : x0 + w]), (x0, y0, w, h)
