"""PyAV video IO: numeric round trips, exact frame counts, clear errors, atomic writes."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from imageconductor.video_io import (
    Mp4Writer,
    VideoDecodeError,
    iter_video,
    probe,
    read_video,
    write_gif,
    write_mp4,
)


def smooth_frames(num_frames: int = 12, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Textured luminance with slowly varying colour, drifting right 2 px per frame."""
    rng = np.random.default_rng(seed)
    full_width = width + 2 * num_frames

    def lattice_noise(cell: int, channels: int) -> np.ndarray:
        lattice = rng.uniform(-1, 1, (height // cell + 2, full_width // cell + 2, channels)).astype(
            np.float32
        )
        size = (lattice.shape[1] * cell, lattice.shape[0] * cell)
        big = cv2.resize(lattice, size, interpolation=cv2.INTER_CUBIC).reshape(size[1], size[0], channels)
        return big[:height, :full_width]

    big = 128 + 70 * lattice_noise(6, 1) + 40 * lattice_noise(32, 3)
    frames = [big[:height, 2 * t : 2 * t + width] for t in range(num_frames)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_mp4_round_trip_is_close_and_exact_in_count(tmp_path):
    frames = smooth_frames()
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=8, crf=10)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert fps == pytest.approx(8.0)
    error = np.abs(decoded.astype(np.float64) - frames).mean()
    assert error < 2.0
    # The quality knob is really passed to the encoder: a coarse crf loses clearly more.
    coarse, _ = read_video(write_mp4(frames, tmp_path / "coarse.mp4", crf=40))
    assert np.abs(coarse.astype(np.float64) - frames).mean() > 2 * error


def test_read_video_start_and_max_frames_select_exact_frames(tmp_path):
    frames = smooth_frames(num_frames=10)
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=12)
    full, _ = read_video(path)
    part, fps = read_video(path, start=3, max_frames=4)
    assert fps == pytest.approx(12.0)
    np.testing.assert_array_equal(part, full[3:7])
    assert len(read_video(path, start=8)[0]) == 2
    np.testing.assert_array_equal(np.stack(list(iter_video(path, start=2, max_frames=3))), full[2:5])
    assert len(read_video(path, max_frames=0)[0]) == 0


def test_probe_reports_count_fps_and_size(tmp_path):
    path = write_mp4(smooth_frames(num_frames=7, height=48, width=80), tmp_path / "clip.mp4", fps=24)
    info = probe(path)
    assert (info.num_frames, info.width, info.height) == (7, 80, 48)
    assert info.fps == pytest.approx(24.0)
    assert info.codec == "h264"
    assert info.duration_s == pytest.approx(7 / 24, abs=0.05)


def test_fractional_frame_rate_survives(tmp_path):
    path = write_mp4(smooth_frames(num_frames=5), tmp_path / "ntsc.mp4", fps=30000 / 1001)
    assert probe(path).fps == pytest.approx(29.97, abs=0.01)


def test_decode_errors_name_the_reason(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    reasons = {}
    for name, path in {"empty": empty, "missing": tmp_path / "missing.mp4", "text": text}.items():
        with pytest.raises(VideoDecodeError) as caught:
            read_video(path)
        reasons[name] = caught.value.reason
        assert str(path) in str(caught.value)
    assert "zero-byte" in reasons["empty"]
    assert "does not exist" in reasons["missing"]
    assert reasons["text"]


def test_still_image_is_not_a_video(tmp_path):
    image = tmp_path / "still.png"
    Image.fromarray(smooth_frames(1)[0]).save(image)
    with pytest.raises(VideoDecodeError, match="still image"):
        read_video(image)


def test_truncated_files_raise(tmp_path):
    frames = smooth_frames(num_frames=20)
    # Index at the end (PyAV's default): cutting the file loses the index.
    data = write_mp4(frames, tmp_path / "full.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError):
        read_video(cut)
    # Index first ("faststart"): the index promises frames whose data is gone.
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(faststart), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    data = faststart.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoDecodeError, match="truncated"):
        read_video(cut)


def test_odd_sizes_raise_or_pad(tmp_path):
    frames = smooth_frames(num_frames=4, height=63, width=95)
    with pytest.raises(ValueError, match="even"):
        write_mp4(frames, tmp_path / "odd.mp4")
    assert not (tmp_path / "odd.mp4").exists()
    decoded, _ = read_video(write_mp4(frames, tmp_path / "odd.mp4", pad_odd=True))
    assert decoded.shape == (4, 64, 96, 3)
    assert np.abs(decoded[:, :63, :95].astype(np.float64) - frames).mean() < 3.0


def test_bad_frames_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 16, 16, 3), dtype=np.float32), tmp_path / "a.mp4")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_mp4(np.zeros((16, 16, 3), dtype=np.uint8), tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="zero frames"):
        write_mp4(np.zeros((0, 16, 16, 3), dtype=np.uint8), tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_previous_file_and_no_temporaries(tmp_path):
    target = tmp_path / "clip.mp4"
    write_mp4(smooth_frames(num_frames=3), target)
    before = target.read_bytes()
    frames = smooth_frames(num_frames=3)
    with pytest.raises(ValueError, match="earlier frames"), Mp4Writer(target) as writer:
        writer.write(frames[0])
        writer.write(frames[1][:32])
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_streaming_writer_matches_write_mp4(tmp_path):
    frames = smooth_frames(num_frames=6)
    with Mp4Writer(tmp_path / "stream.mp4", fps=8, crf=10) as writer:
        for image in frames:
            writer.write(image)
    assert writer.frames_written == 6
    streamed, _ = read_video(tmp_path / "stream.mp4")
    whole, _ = read_video(write_mp4(frames, tmp_path / "whole.mp4", fps=8, crf=10))
    np.testing.assert_array_equal(streamed, whole)


def test_gif_round_trip(tmp_path):
    frames = smooth_frames(num_frames=5)
    path = write_gif(frames, tmp_path / "clip.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        assert gif.info["duration"] == 100
        gif.seek(3)
        third = np.asarray(gif.convert("RGB"), dtype=np.float64)
    # GIF palettes quantise colour; the picture must still be the same one.
    assert np.abs(third - frames[3]).mean() < 12.0
    assert np.abs(third - frames[0]).mean() > np.abs(third - frames[3]).mean()


def test_encoding_is_byte_identical_across_runs(tmp_path):
    frames = smooth_frames(num_frames=8)
    first = write_mp4(frames, tmp_path / "a.mp4", crf=12).read_bytes()
    for index in range(3):
        assert write_mp4(frames, tmp_path / f"b{index}.mp4", crf=12).read_bytes() == first
    decoded = [read_video(tmp_path / "a.mp4")[0] for _ in range(3)]
    assert all(np.array_equal(decoded[0], other) for other in decoded[1:])
