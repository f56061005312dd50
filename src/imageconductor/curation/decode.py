"""Decode a source video with PyAV (through imageconductor.video_io), resizing frames as they stream in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imageconductor.curation.clip import cover_size
from imageconductor.curation.errors import SkipInput
from imageconductor.video_io import VideoDecodeError, iter_video, probe

# Drop reasons of the decode stage (the summary table counts inputs per reason).
MISSING = "missing"
EMPTY = "empty_file"
NOT_VIDEO = "not_a_video"
CORRUPT = "corrupt_or_truncated"
TOO_FEW_FRAMES = "too_few_frames"


@dataclass
class DecodedVideo:
    """Frames resized to cover the crop with short side ``short_side``; sizes are (width, height)."""

    frames: np.ndarray
    fps: float
    source_size: tuple[int, int]
    resized_size: tuple[int, int]


def looks_like_video_container(path: str | Path) -> bool:
    """Whether the first bytes carry a common video container signature (MP4/MOV, Matroska/WebM, AVI,
    FLV, MPEG-TS/PS): such a file that cannot be opened is damaged rather than "not a video"."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")
        or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba"))
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or (len(head) > 0 and head[0] == 0x47 and _ts_sync(path))
    )


def _ts_sync(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        data = handle.read(188 * 3 + 1)
    return len(data) > 376 and data[188] == 0x47 and data[376] == 0x47


def classify_decode_error(error: VideoDecodeError) -> str:
    """Map a VideoDecodeError to a drop reason label."""
    reason = error.reason.lower()
    if "does not exist" in reason or "directory" in reason:
        return MISSING
    if "zero-byte" in reason:
        return EMPTY
    if "not a readable media container" in reason or "no video stream" in reason:
        return CORRUPT if looks_like_video_container(error.path) else NOT_VIDEO
    return CORRUPT


def decode_video(
    path: str | Path, short_side: int, width: int, height: int, max_frames: int | None = None
) -> DecodedVideo:
    """Decode ``path``; raise :class:`SkipInput` with the reason when it cannot be used."""

    try:
        info = probe(path)
        target = cover_size(info.height, info.width, short_side, width, height)
        resized = []
        for frame in iter_video(path, max_frames=max_frames):
            if frame.shape[1] != target[0] or frame.shape[0] != target[1]:
                shrink = target[0] < frame.shape[1]
                frame = cv2.resize(
                    frame, target, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                )
            resized.append(frame)
    except VideoDecodeError as exc:
        raise SkipInput(classify_decode_error(exc), exc.reason) from exc
    if len(resized) < 2:
        raise SkipInput(TOO_FEW_FRAMES, f"{len(resized)} frame(s) decoded; a still image or an empty stream")
    return DecodedVideo(np.stack(resized), info.fps, (info.width, info.height), target)
