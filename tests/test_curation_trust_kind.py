"""Track trust (round trip + dense-flow agreement) and the camera/object clip kind, against exact truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from imageconductor.curation.clip_kind import classify_clip_kind
from imageconductor.curation.config import CurationConfig
from imageconductor.curation.errors import CurationConfigError
from imageconductor.curation.motion import DISFlow
from imageconductor.curation.stages import annotate_clip
from imageconductor.curation.track_trust import trusted_visibility
from imageconductor.curation.tracking import LucasKanadeTracker
from imageconductor.synthetic import random_clip_spec, render_clip
from imageconductor.synthetic.perturb import perturbed_clip, track_error_shares
from imageconductor.trajectories import grid_points
from imageconductor.video_io import encode_mp4_bytes


def _panned_frames(num_frames: int = 8, shift: float = 2.0) -> np.ndarray:
    """A smooth random texture moving right by ``shift`` px per frame (exact integer-free warp)."""
    rng = np.random.default_rng(0)
    base = cv2.resize(
        rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC
    )
    base = cv2.GaussianBlur(base, (0, 0), 1.5)
    frames = [
        cv2.warpAffine(
            base, np.float32([[1, 0, shift * t], [0, 1, 0]]), (160, 120), borderMode=cv2.BORDER_REFLECT
        )
        for t in range(num_frames)
    ]
    return np.stack(frames)


def test_a_jump_makes_the_point_invisible_from_then_on() -> None:
    frames = _panned_frames()
    points = grid_points(160, 120, 6)
    tracks = np.stack([points + [2.0 * t, 0.0] for t in range(len(frames))]).astype(np.float32)
    visible = np.ones(tracks.shape[:2], dtype=bool)
    tracks[4:, 7] += [15.0, -6.0]  # point 7 jumps 16 px at frame 4 and follows something else afterwards
    kept = trusted_visibility(frames, tracks, visible, checks="none")
    assert kept.all()
    for checks in ("fb", "flow", "fb+flow"):
        trusted = trusted_visibility(frames, tracks, visible, checks=checks, flow_backend=DISFlow("medium"))
        assert trusted[:4, 7].all() and not trusted[4:, 7].any(), checks
        others = np.delete(trusted, 7, axis=1)
        assert others.mean() > 0.9, (checks, others.mean())


def test_flow_check_needs_a_backend_and_modes_are_checked() -> None:
    frames = _panned_frames(3)
    tracks = np.zeros((3, 1, 2), np.float32) + 50
    with pytest.raises(ValueError, match="flow_backend"):
        trusted_visibility(frames, tracks, np.ones((3, 1), bool), checks="flow")
    with pytest.raises(ValueError, match="unknown track trust checks"):
        trusted_visibility(frames, tracks, np.ones((3, 1), bool), checks="strict")


def test_track_trust_cuts_wrong_visible_steps_on_fast_motion() -> None:
    case = perturbed_clip(1, "fast", num_frames=16, width=192, height=128)
    points = grid_points(192, 128, 12)
    truth, true_visible = case.track_points(points)
    tracks, visible = LucasKanadeTracker()(case.frames, points)
    before = track_error_shares(tracks, visible, truth, true_visible)
    trusted = trusted_visibility(case.frames, tracks, visible, flow_backend=DISFlow("fast"))
    after = track_error_shares(tracks, trusted, truth, true_visible)
    assert before.off_3px > 0.02  # the case has wrong visible steps to remove
    assert after.off_3px < 0.5 * before.off_3px
    assert after.off_10px < 0.5 * before.off_10px
    assert after.kept > 0.9 * before.kept


def test_error_shares_count_hidden_points_as_wrong() -> None:
    truth = np.zeros((3, 2, 2))
    tracks = truth.copy()
    tracks[1:, 0] += [4.0, 0.0]  # 4 px off: off by > 3 px, not by > 10 px
    true_visible = np.array([[1, 1], [1, 1], [1, 0]], bool)
    shares = track_error_shares(tracks, np.ones((3, 2), bool), truth, true_visible)
    assert shares.steps == 4
    assert shares.off_3px == pytest.approx(3 / 4) and shares.off_10px == pytest.approx(1 / 4)
    assert shares.kept == 1.0


def test_clip_kind_from_synthetic_tracks() -> None:
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 300, (100, 2))
    frames = []
    for t in range(10):
        scale, shift = 1 + 0.01 * t, np.array([3.0 * t, -1.0 * t])
        frames.append((start - 150) * scale + 150 + shift)
    tracks = np.stack(frames).astype(np.float32)
    visible = np.ones(tracks.shape[:2], bool)
    camera = classify_clip_kind(tracks, visible)
    assert camera.kind == "camera" and camera.moving_points == 0 and camera.tracked_points == 100
    moved = tracks.copy()
    moved[:, :5] += np.arange(10)[:, None, None] * np.array([2.0, 1.0])  # 5 points drift on their own
    labelled = classify_clip_kind(moved, visible)
    assert labelled.kind == "object" and labelled.moving_points == 5


@pytest.mark.parametrize("seed", [1000, 1001, 1004, 1005])  # object, camera, camera, mixed
def test_curated_clip_kind_matches_the_world(seed: int) -> None:
    config = CurationConfig()
    spec = random_clip_spec(seed)
    clip = encode_mp4_bytes(render_clip(spec).frames, config.output_fps, config.crf, config.x264_preset)
    result = annotate_clip("clip", clip, config)
    assert result.error is None
    assert result.info["kind"] == ("camera" if spec.kind == "camera" else "object")
    assert 0 < result.visibility.mean() <= result.info["visible_before_trust"]


def test_new_settings_are_validated() -> None:
    with pytest.raises(CurationConfigError, match="track_trust"):
        CurationConfig(track_trust="all")
    with pytest.raises(CurationConfigError, match="trust_fb_px"):
        CurationConfig(trust_fb_px=0)
    with pytest.raises(CurationConfigError, match="kind_min_moving_share"):
        CurationConfig(kind_min_moving_share=2)
    assert CurationConfig(track_trust="none").fingerprint() != CurationConfig().fingerprint()
