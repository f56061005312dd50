"""Unit checks of the curation stages: config, inputs, windows, motion filter, flow, tracking, codec."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imageconductor.curation.clip import center_crop, choose_window, cover_size
from imageconductor.curation.config import CurationConfig
from imageconductor.curation.errors import (
    BackendUnavailableError,
    CurationConfigError,
    InputListError,
    SkipInput,
)
from imageconductor.curation.inputs import discover_inputs
from imageconductor.curation.motion import DISFlow, RaftFlow, low_motion_keys, motion_score, rms_flow
from imageconductor.curation.seeding import input_rng, input_seed
from imageconductor.curation.tracking import CoTrackerTracker, LucasKanadeTracker
from imageconductor.trajectories import grid_points
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2.0) * 255 * 3 - 255).clip(0, 255).astype(np.uint8)


def _shifted_video(shift: tuple[float, float], num_frames: int = 8, size=(96, 128)) -> np.ndarray:
    """Frames of a texture translated by ``shift`` pixels per frame (exact sub-pixel warp)."""
    height, width = size
    big = _texture(height + 80, width + 80)
    frames = []
    for t in range(num_frames):
        matrix = np.float32([[1, 0, 40 + shift[0] * t], [0, 1, 40 + shift[1] * t]])
        frames.append(
            cv2.warpAffine(big, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        )
    return np.stack(frames)


# --- config -------------------------------------------------------------------------------------------


def test_config_round_trips_json_and_yaml(tmp_path):
    config = CurationConfig(seed=7, stride_max=4, motion_drop_fraction=0.5, index_format="jsonl")
    for name in ("c.json", "c.yaml"):
        config.save(tmp_path / name)
        assert CurationConfig.load(tmp_path / name) == config


@pytest.mark.parametrize(
    ("changes", "word"),
    [
        ({"stride_min": 4, "stride_max": 2}, "stride_min"),
        ({"motion_drop_fraction": 1.0}, "motion_drop_fraction"),
        ({"tracker": "raft"}, "tracker"),
        ({"num_frames": 1}, "num_frames"),
        ({"width": 383}, "crop size"),
        ({"lk_window": 20}, "lk_window"),
    ],
)
def test_config_rejects_bad_values_naming_them(changes, word):
    with pytest.raises(CurationConfigError, match=word):
        CurationConfig(**changes)


def test_config_unknown_key_and_fingerprint(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"seed": 1, "strides": 3}))
    with pytest.raises(CurationConfigError, match="strides"):
        CurationConfig.load(tmp_path / "bad.json")
    base = CurationConfig()
    assert base.fingerprint() == CurationConfig(samples_per_shard=3).fingerprint()
    assert base.fingerprint() != CurationConfig(seed=1).fingerprint()
    assert base.fingerprint() != CurationConfig(grid_size=8).fingerprint()


# --- inputs -------------------------------------------------------------------------------------------


def test_folder_inputs_sorted_with_caption_sidecars(tmp_path):
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "a.txt").write_text("a caption\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.mkv").write_bytes(b"x")
    (tmp_path / ".hidden.mp4").write_bytes(b"x")
    items = discover_inputs(tmp_path)
    assert [i.input_id for i in items] == ["a.mp4", "b.mp4", "sub/c.mkv"]
    assert [i.caption for i in items] == ["a caption", None, None]
    assert len({i.key for i in items}) == 3 and all("." not in i.key for i in items)


def test_manifest_forms(tmp_path):
    (tmp_path / "list.txt").write_text("# comment\nv1.mp4\n\n/abs/v2.mp4\n")
    items = discover_inputs(tmp_path / "list.txt")
    assert [i.path for i in items] == [str(tmp_path / "v1.mp4"), "/abs/v2.mp4"]
    (tmp_path / "m.csv").write_text("video,caption\nv1.mp4,a dog runs\nv2.mp4,\n")
    items = discover_inputs(tmp_path / "m.csv")
    assert [(i.input_id, i.caption) for i in items] == [("v1.mp4", "a dog runs"), ("v2.mp4", None)]
    (tmp_path / "m.jsonl").write_text('{"path": "v1.mp4", "caption": "c1", "id": "first"}\n"v2.mp4"\n')
    items = discover_inputs(tmp_path / "m.jsonl")
    assert [(i.input_id, i.caption) for i in items] == [("first", "c1"), ("v2.mp4", None)]


@pytest.mark.parametrize(
    ("name", "text", "word"),
    [
        ("m.csv", "caption\nhello\n", "path column"),
        ("m.jsonl", '{"path": "a.mp4"}\n{"path": "a.mp4"}\n', "duplicate"),
        ("m.jsonl", "{not json}\n", "not valid JSON"),
        ("m.json", "[]", "cannot use"),
    ],
)
def test_bad_manifests_raise_clear_errors(tmp_path, name, text, word):
    (tmp_path / name).write_text(text)
    with pytest.raises(InputListError, match=word):
        discover_inputs(tmp_path / name)
    with pytest.raises(InputListError, match="not found"):
        discover_inputs(tmp_path / "nothing")


# --- seeds, windows, geometry -------------------------------------------------------------------------


def test_input_seed_depends_on_seed_and_id_only():
    assert input_seed(0, "a.mp4") == input_seed(0, "a.mp4")
    assert len({input_seed(0, "a.mp4"), input_seed(1, "a.mp4"), input_seed(0, "b.mp4")}) == 3
    assert input_rng(3, "x").integers(0, 10**9) == input_rng(3, "x").integers(0, 10**9)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 50),
    length=st.integers(32, 700),
    stride_max=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
)
def test_window_fits_scene_and_uses_largest_feasible_strides(start, length, stride_max, seed):
    window = choose_window((start, start + length), 32, 1, stride_max, np.random.default_rng(seed))
    indices = window.indices
    assert len(indices) == 32 and np.all(np.diff(indices) == window.stride)
    assert indices[0] >= start and indices[-1] < start + length
    assert 1 <= window.stride <= min(stride_max, (length - 1) // 31)


def test_window_strides_cover_range_and_short_scene_is_skipped():
    rng = np.random.default_rng(0)
    strides = {choose_window((0, 1000), 32, 1, 16, rng).stride for _ in range(400)}
    assert strides == set(range(1, 17))
    with pytest.raises(SkipInput) as info:
        choose_window((10, 40), 32, 1, 16, rng)
    assert info.value.reason == "too_short"


def test_cover_size_and_centre_crop():
    assert cover_size(720, 1280, 256, 384, 256) == (455, 256)
    assert cover_size(480, 640, 256, 384, 256) == (384, 288)  # 4:3 is enlarged to cover the crop
    assert cover_size(1920, 1080, 256, 384, 256) == (384, 683)  # portrait too
    frames = np.arange(2 * 10 * 12 * 3, dtype=np.uint8).reshape(2, 10, 12, 3)
    crop, box = center_crop(frames, 8, 6)
    assert box == (2, 2, 8, 6)
    np.testing.assert_array_equal(crop, frames[:, 2:8, 2:10])


# --- motion -------------------------------------------------------------------------------------------


def test_rms_flow_and_dis_score_measure_known_shift():
    flow = np.zeros((4, 5, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, 4.0
    assert rms_flow(flow) == pytest.approx(5.0)
    for shift in [(1.5, 0.0), (0.0, -2.0), (2.0, 2.0)]:
        score = motion_score(_shifted_video(shift), DISFlow("medium"), short_side=None)
        assert score == pytest.approx(np.hypot(*shift), rel=0.1)


def test_low_motion_filter_drops_lowest_fraction_with_stable_ties():
    scores = [("e", 5.0), ("a", 1.0), ("c", 3.0), ("b", 1.0), ("d", 4.0), ("f", 6.0), ("g", 7.0), ("h", 8.0)]
    dropped, threshold = low_motion_keys(scores, 0.25)
    assert dropped == {"a", "b"} and threshold == 1.0
    dropped, _ = low_motion_keys(scores, 0.3)
    assert dropped == {"a", "b"}  # floor(0.3 * 8) = 2
    assert low_motion_keys(list(reversed(scores)), 0.2)[0] == {"a"}  # tie broken by key, not order
    assert low_motion_keys(scores, 0.0) == (set(), None)


def test_raft_backend_needs_weights_and_runs_a_torchscript_file(tmp_path):
    with pytest.raises(BackendUnavailableError, match="--raft-weights"):
        RaftFlow(None)
    with pytest.raises(BackendUnavailableError, match="not found"):
        RaftFlow(tmp_path / "missing.pt")
    import torch

    class ConstantFlow(torch.nn.Module):
        def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> list[torch.Tensor]:
            flow = torch.zeros(image1.shape[0], 2, image1.shape[2], image1.shape[3])
            flow[:, 0] = 0.6
            flow[:, 1] = 0.8 + 0.0 * (image2 - image1).mean()
            return [flow * 0.5, flow]

    torch.jit.script(ConstantFlow()).save(str(tmp_path / "raft.pt"))
    backend = RaftFlow(tmp_path / "raft.pt")
    frames = _shifted_video((1.0, 0.0), num_frames=3, size=(36, 50))
    assert backend(frames[0], frames[1]).shape == (36, 50, 2)
    assert motion_score(frames, backend, short_side=None) == pytest.approx(1.0, abs=1e-6)


# --- tracking -----------------------------------------------------------------------------------------


def test_grid_points_are_cell_centres():
    points = grid_points(384, 256, 16)
    assert points.shape == (256, 2)
    np.testing.assert_allclose(points[0], [12.0, 8.0])
    np.testing.assert_allclose(points[-1], [372.0, 248.0])
    np.testing.assert_allclose(points[17], [36.0, 24.0])


def test_lk_tracks_subpixel_translation_and_loses_points_leaving_the_frame():
    shift = (1.3, -0.7)
    frames = _shifted_video(shift, num_frames=12)
    points = grid_points(128, 96, 6)
    tracks, visible = LucasKanadeTracker()(frames, points)
    truth = points[None] - np.arange(12)[:, None, None] * np.array(shift, np.float32)
    inside = (truth[..., 0] >= 0) & (truth[..., 0] <= 127) & (truth[..., 1] >= 0) & (truth[..., 1] <= 95)
    error = np.linalg.norm(tracks - truth, axis=-1)
    assert np.median(error[visible]) < 0.1
    assert not visible[~inside].any()  # nothing outside the frame counts as visible
    assert visible[inside].mean() > 0.9
    # lost points keep moving with their neighbours
    assert np.median(error[~visible]) < 1.0


def test_lk_forward_backward_check_drops_points_on_a_scene_change():
    frames = _shifted_video((1.0, 0.0), num_frames=6)
    frames[3:] = _texture(96, 128, seed=5)[None]
    _, visible = LucasKanadeTracker()(frames, grid_points(128, 96, 8))
    assert visible[:3].mean() > 0.9 and visible[3:].mean() < 0.3


def test_cotracker_backend_reports_what_is_missing(tmp_path):
    with pytest.raises(BackendUnavailableError, match="cotracker"):
        CoTrackerTracker(tmp_path / "ckpt.pth")


# --- codec --------------------------------------------------------------------------------------------


def test_clip_codec_gives_the_same_bytes_whatever_is_in_memory():
    # x264's AVX-512 macroblock-tree path gave other bytes for about half of these repeats (mbtree now off).
    frames = _shifted_video((1.0, 0.5), num_frames=6, size=(64, 96))
    reference = encode_mp4_bytes(frames, fps=8, crf=15)
    rng = np.random.default_rng(0)
    held = []
    for _ in range(30):
        held = [*held[-8:], rng.bytes(int(rng.integers(1_000, 1_000_000)))]
        assert encode_mp4_bytes(frames, fps=8, crf=15) == reference


def test_clip_codec_is_deterministic_and_close():
    frames = _shifted_video((1.0, 0.5), num_frames=6, size=(64, 96))
    data = encode_mp4_bytes(frames, fps=8, crf=15)
    assert data == encode_mp4_bytes(frames, fps=8, crf=15)
    decoded = decode_mp4_bytes(data)
    assert decoded.shape == frames.shape
    luma = np.array([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames], float)
    decoded_luma = np.array([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decoded], float)
    assert np.abs(decoded_luma - luma).mean() < 2.0  # chroma is subsampled (yuv420p); luma stays close
    with pytest.raises(ValueError, match="even"):
        encode_mp4_bytes(frames[:, :63], fps=8, crf=15)
