"""Arrays in and out of ``.npy`` bytes for shard members.

Clip MP4 bytes come from :func:`imageconductor.video_io.encode_mp4_bytes` (deterministic settings, so
the bytes are the same from run to run and on every engine).
"""

from __future__ import annotations

import io

import numpy as np


def array_to_npy(array: np.ndarray) -> bytes:
    """The ``.npy`` bytes of an array."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_to_array(data: bytes) -> np.ndarray:
    """The array of ``.npy`` bytes."""
    return np.load(io.BytesIO(data), allow_pickle=False)
