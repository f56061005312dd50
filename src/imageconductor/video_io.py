"""Video files in and out through PyAV: decode to RGB arrays, write H.264 MP4 and GIF atomically.

Frames are always ``uint8`` arrays shaped ``(T, H, W, 3)`` in RGB order. Every writer first writes a
temporary file beside the target and renames it into place, so a crash never leaves a half-written
video under the final name; the final file has the permissions of the user's umask.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from imageconductor.files import AtomicFile

__all__ = [
    "VideoDecodeError",
    "Mp4Writer",
    "VideoInfo",
    "decode_mp4_bytes",
    "encode_mp4_bytes",
    "iter_video",
    "probe",
    "read_video",
    "write_gif",
    "write_mp4",
]

PathLike = str | os.PathLike


class VideoDecodeError(RuntimeError):
    """A file could not be decoded as a video; ``reason`` says why (missing, empty, truncated...)."""

    def __init__(self, path: PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path!s}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What a container says about its first video stream (``num_frames`` counted from packets if absent)."""

    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    duration_s: float | None


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise VideoDecodeError(path, "file does not exist")
    if path.is_dir():
        raise VideoDecodeError(path, "path is a directory")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "zero-byte file")


@contextmanager
def _open_video_stream(path: PathLike):
    """Open ``path`` and yield ``(container, video_stream)``, turning every failure into VideoDecodeError."""
    path = Path(path)
    _check_readable(path)
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"not a readable media container ({exc})") from exc
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream in container")
        format_name = container.format.name
        if format_name.endswith("_pipe") or format_name == "image2":
            raise VideoDecodeError(path, f"still image ({format_name}), not a video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield container, stream
    finally:
        container.close()


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def _check_range(start: int, max_frames: int | None) -> None:
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")


def _decode_frames(
    path: PathLike, container, stream, start: int, max_frames: int | None
) -> Iterator[np.ndarray]:
    """Frames of an open stream from index ``start`` on; raises VideoDecodeError on damage."""
    if max_frames == 0:
        return
    declared = int(stream.frames or 0)
    decoded = produced = 0
    try:
        for frame in container.decode(stream):
            decoded += 1
            if decoded <= start:
                continue
            # Single-threaded colour conversion: FFmpeg's sliced swscale gave load-dependent pixels.
            yield frame.to_ndarray(format="rgb24", threads=1)
            produced += 1
            if max_frames is not None and produced >= max_frames:
                return
    except av.FFmpegError as exc:
        raise VideoDecodeError(path, f"decode error after frame {decoded} ({exc})") from exc
    if decoded == 0:
        raise VideoDecodeError(path, "no frames could be decoded")
    if declared and decoded < declared:
        raise VideoDecodeError(path, f"truncated: decoded {decoded} of {declared} declared frames")


def iter_video(path: PathLike, start: int = 0, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield RGB frames ``(H, W, 3)`` uint8 of ``path`` from frame index ``start`` on (decoded, exact).

    Raises VideoDecodeError when the file is missing, empty, not a video, fails to decode, or holds fewer
    frames than its container declares (a truncated file).
    """
    _check_range(start, max_frames)
    with _open_video_stream(path) as (container, stream):
        yield from _decode_frames(path, container, stream, start, max_frames)


def read_video(path: PathLike, max_frames: int | None = None, start: int = 0) -> tuple[np.ndarray, float]:
    """Decode ``path`` into ``(frames (T, H, W, 3) uint8 RGB, fps)``.

    ``start`` skips that many leading frames, ``max_frames`` caps how many are returned. Raises
    VideoDecodeError (with ``.reason``) for unreadable, zero-byte, truncated or non-video files.
    """
    _check_range(start, max_frames)
    with _open_video_stream(path) as (container, stream):
        fps = _stream_fps(stream)
        frames = list(_decode_frames(path, container, stream, start, max_frames))
        if not frames:
            width, height = stream.codec_context.width, stream.codec_context.height
            return np.zeros((0, height, width, 3), dtype=np.uint8), fps
    return np.stack(frames), fps


def probe(path: PathLike) -> VideoInfo:
    """Read the container header (and count packets when it does not say how many frames there are)."""
    with _open_video_stream(path) as (container, stream):
        num_frames = int(stream.frames or 0)
        if num_frames == 0:
            try:
                num_frames = sum(1 for packet in container.demux(stream) if packet.size > 0)
            except av.FFmpegError as exc:
                raise VideoDecodeError(path, f"demux error while counting frames ({exc})") from exc
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(
            num_frames=num_frames,
            fps=_stream_fps(stream),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            codec=stream.codec_context.name,
            duration_s=duration,
        )


def _as_frames(frames) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must be shaped (T, H, W, 3), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError("cannot write a video with zero frames")
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {array.dtype}")
    return array


@contextmanager
def _atomic_target(path: PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success, delete it on failure."""
    target = AtomicFile(path)
    try:
        yield target.temp
        target.commit()
    finally:
        target.discard()


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    _, height, width, _ = frames.shape
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


class Mp4Writer:
    """Streaming H.264 (yuv420p) MP4 writer; the file appears at ``path`` only when closed without error.

    Use as a context manager and call ``write(frame)`` with (H, W, 3) uint8 RGB frames (or ``write_many``).
    ``path`` may also be a writable binary buffer (e.g. ``io.BytesIO``): the MP4 is then written into it.
    yuv420p needs even width and height: odd sizes raise ValueError unless ``pad_odd`` is set, which
    repeats the last row/column. Lower ``crf`` is closer to lossless; ``preset`` trades encoding speed for
    file size (quality is set by ``crf``). The same frames and settings give byte-identical files from run
    to run and across x86 SIMD levels for one libx264 build (``encoder_threads`` is part of the settings).
    """

    def __init__(
        self,
        path: PathLike,
        fps: float = 8,
        crf: int = 10,
        preset: str = "veryfast",
        pad_odd: bool = False,
        encoder_threads: int = 1,
    ):
        if encoder_threads < 1:
            raise ValueError(f"encoder_threads must be >= 1, got {encoder_threads}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {crf}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._buffer = path if hasattr(path, "write") else None
        self.path = None if self._buffer is not None else Path(path)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.crf, self.preset, self.pad_odd = int(crf), preset, pad_odd
        self.encoder_threads = int(encoder_threads)
        self.frames_written = 0
        self._target = None
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> Mp4Writer:
        if self._buffer is not None:
            self._container = av.open(self._buffer, mode="w", format="mp4")
        else:
            self._target = AtomicFile(self.path)
            self._container = av.open(str(self._target.temp), mode="w", format="mp4")
        return self

    def _open_stream(self, width: int, height: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(
                f"H.264 yuv420p needs even frame sizes, got {width}x{height}; "
                "crop/pad first or pass pad_odd=True"
            )
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # Byte-identical files (resumable, engine-independent curation) need two settings. x264's output
        # depends on its thread count, which "auto" ties to the machine, so the count is fixed. And its
        # macroblock-tree rate control is off: with it, x264's AVX-512 code gave run-to-run different bytes
        # for small frames (docs/synthetic.md). Files are larger at the same crf, and closer to the input.
        threads = str(self.encoder_threads)
        stream.options = {"crf": str(self.crf), "preset": self.preset, "threads": threads, "mbtree": "0"}
        stream.codec_context.thread_count = self.encoder_threads
        stream.codec_context.time_base = 1 / self.rate
        self._stream, self._size = stream, (width, height)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame must have the first frame's size."""
        if self._container is None:
            raise RuntimeError("Mp4Writer.write called outside its `with` block")
        image = _as_frames(np.asarray(frame)[None])[0]
        if self.pad_odd:
            image = _pad_to_even(image[None])[0]
        height, width = image.shape[:2]
        if self._stream is None:
            self._open_stream(width, height)
        elif (width, height) != self._size:
            raise ValueError(f"frame {self.frames_written} is {width}x{height}, earlier frames {self._size}")
        rgb_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        # Single-threaded colour conversion: FFmpeg's sliced swscale gave load-dependent results here.
        video_frame = rgb_frame.reformat(format="yuv420p", threads=1)
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.rate
        self._container.mux(self._stream.encode(video_frame))
        self.frames_written += 1

    def write_many(self, frames) -> None:
        for frame in _as_frames(frames):
            self.write(frame)

    def __exit__(self, exc_type, exc, traceback) -> None:
        container, self._container = self._container, None
        finished = False
        try:
            if exc_type is None:
                if self._stream is None:
                    raise ValueError("cannot write a video with zero frames")
                container.mux(self._stream.encode(None))
                finished = True
        finally:
            container.close()
            if self._target is not None:
                if finished:
                    self._target.commit()
                self._target.discard()


def write_mp4(
    frames,
    path: PathLike,
    fps: float = 8,
    crf: int = 10,
    preset: str = "veryfast",
    pad_odd: bool = False,
    encoder_threads: int = 1,
) -> Path:
    """Encode ``frames`` (T, H, W, 3) uint8 RGB as H.264 yuv420p MP4 at ``path`` (atomic write).

    yuv420p needs even width and height: odd sizes raise ValueError unless ``pad_odd`` is set, which
    repeats the last row/column. Lower ``crf`` is closer to lossless (0 = lossless luma). Deterministic:
    the same frames and settings give byte-identical files.
    """
    array = _as_frames(frames)
    with Mp4Writer(
        path, fps=fps, crf=crf, preset=preset, pad_odd=pad_odd, encoder_threads=encoder_threads
    ) as writer:
        writer.write_many(array)
    return Path(path)


def encode_mp4_bytes(
    frames, fps: float = 8, crf: int = 10, preset: str = "veryfast", encoder_threads: int = 1
) -> bytes:
    """The H.264 yuv420p MP4 bytes of ``frames`` (T, H, W, 3) uint8 RGB with even sizes, in memory.

    Deterministic like :func:`write_mp4`: the same frames and settings give byte-identical output.
    """
    buffer = io.BytesIO()
    with Mp4Writer(buffer, fps=fps, crf=crf, preset=preset, encoder_threads=encoder_threads) as writer:
        writer.write_many(_as_frames(frames))
    return buffer.getvalue()


def decode_mp4_bytes(data: bytes) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 RGB of in-memory video bytes (e.g. from :func:`encode_mp4_bytes`)."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise VideoDecodeError("<bytes>", "no video stream in container")
            stream = container.streams.video[0]
            frames = [frame.to_ndarray(format="rgb24", threads=1) for frame in container.decode(stream)]
    except av.FFmpegError as exc:
        raise VideoDecodeError("<bytes>", f"not decodable ({exc})") from exc
    if not frames:
        raise VideoDecodeError("<bytes>", "no frames could be decoded")
    return np.stack(frames)


def write_gif(frames, path: PathLike, fps: float = 8) -> Path:
    """Write ``frames`` (T, H, W, 3) uint8 RGB as a looping GIF at ``path`` (atomic write, via Pillow)."""

    array = _as_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [Image.fromarray(image) for image in array]
    with _atomic_target(path) as temp_path:
        images[0].save(
            temp_path,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return Path(path)
