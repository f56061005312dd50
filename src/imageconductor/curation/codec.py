"""Bytes in and out: clip MP4 in memory and ``.npy`` arrays.

Source videos are read through :mod:`imageconductor.video_io`; the short curated clips are encoded and
decoded here, in memory and single-threaded, so the MP4 bytes are the same on every machine and engine
(x264 output depends on its thread count) and per-core throughput is what the benchmark measures.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def encode_clip(frames: np.ndarray, fps: int = 8, crf: int = 15, preset: str = "veryfast") -> bytes:
    """H.264 (yuv420p) MP4 bytes of ``frames`` (T, H, W, 3) uint8 RGB with even H and W."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(
            f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}"
        )
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
    rate = Fraction(fps).limit_denominator(1001)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset, "threads": "1"}
        stream.codec_context.thread_count = 1
        stream.codec_context.time_base = 1 / rate
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def decode_clip(data: bytes) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 RGB of MP4 bytes (single-threaded decode)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        raise ValueError("the clip holds no decodable frames")
    return np.stack(frames)


def array_to_npy(array: np.ndarray) -> bytes:
    """The ``.npy`` bytes of an array."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_to_array(data: bytes) -> np.ndarray:
    """The array of ``.npy`` bytes."""
    return np.load(io.BytesIO(data), allow_pickle=False)
