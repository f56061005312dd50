"""ObjMC, CamMC and background motion on synthetic clips whose motion is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from imageconductor.evaluation.motion_metrics import (
    EvaluationError,
    background_grid,
    background_motion,
    background_motion_fraction,
    cammc,
    objmc,
    path_length,
    trajectory_distance,
)
from imageconductor.evaluation.tracking import track
from imageconductor.synthetic import CameraMotion, ClipSpec, ObjectMotion, SpriteSpec, render_clip
from imageconductor.trajectories import TrajectorySet

NUM_FRAMES = 16


@pytest.fixture(scope="module")
def object_clip():
    """Static camera; one textured square moving along a straight line at constant speed."""
    sprite = SpriteSpec("square", "red", 56, (120.0, 150.0), ObjectMotion("line", (100.0, -40.0)))
    return render_clip(ClipSpec(seed=3, kind="object", num_frames=NUM_FRAMES, sprites=(sprite,)))


@pytest.fixture(scope="module")
def curve_clip():
    # ~7 px per frame: within what the LK tracker follows on a moving object (it loses faster ones).
    sprite = SpriteSpec("circle", "blue", 60, (130.0, 160.0), ObjectMotion("curve", (90.0, -40.0), bend=0.25))
    return render_clip(ClipSpec(seed=8, kind="object", num_frames=NUM_FRAMES, sprites=(sprite,)))


@pytest.fixture(scope="module")
def pan_clip():
    """The camera pans; a still sprite sits in a corner."""
    sprite = SpriteSpec("hexagon", "yellow", 40, (340.0, 40.0))
    camera = CameraMotion(pan=(60.0, -24.0))
    return render_clip(
        ClipSpec(seed=5, kind="camera", num_frames=NUM_FRAMES, camera=camera, sprites=(sprite,))
    )


def _background_tracks(clip) -> np.ndarray:
    points = np.array([[90.0, 70.0], [250.0, 90.0], [120.0, 190.0], [290.0, 200.0]])
    positions, visible = clip.track_points(points)
    assert visible.all()
    return positions  # (T, K, 2)


def test_objmc_of_the_true_track_is_sub_pixel(object_clip):
    true = object_clip.sprite_centres()[:, 0]
    result = objmc(object_clip.frames, [true])
    assert result.mean_px < 0.2
    assert result.visible_fraction == 1.0
    np.testing.assert_allclose(result.target[:, 0], true)


def test_objmc_of_a_curved_path_is_sub_pixel(curve_clip):
    true = curve_clip.sprite_centres()[:, 0]
    assert objmc(curve_clip.frames, [true]).mean_px < 0.3


def test_objmc_measures_a_5_pixel_offset(object_clip):
    true = object_clip.sprite_centres()[:, 0]
    shifted = true.copy()
    shifted[1:] += (3.0, 4.0)  # the start stays on the sprite; every later frame asks for 5 px more
    result = objmc(object_clip.frames, [shifted])
    assert result.mean_px == pytest.approx(5.0, abs=0.25)
    np.testing.assert_allclose(result.per_frame_px[1:], 5.0, atol=0.3)
    assert np.isnan(result.per_frame_px[0])  # frame 0 is not counted


def test_objmc_of_twice_the_true_motion_is_the_true_displacement(object_clip):
    true = object_clip.sprite_centres()[:, 0]
    doubled = true[0] + 2.0 * (true - true[0])
    expected = np.linalg.norm(true[1:] - true[0], axis=1).mean()
    assert objmc(object_clip.frames, [doubled]).mean_px == pytest.approx(expected, rel=0.02)


def test_trajectories_are_resampled_to_the_video_length(object_clip):
    # A straight line at constant speed drawn with only its two end points: PCHIP through two points
    # is the same line, so the error stays sub-pixel.
    true = object_clip.sprite_centres()[:, 0]
    two_points = np.stack([true[0], true[-1]])
    assert objmc(object_clip.frames, [two_points]).mean_px < 0.2


def test_trajectories_in_another_image_size_are_rescaled(object_clip):
    true = object_clip.sprite_centres()[:, 0]
    big = TrajectorySet([true * 2.0], "object", 1.0, (768, 512))
    assert objmc(object_clip.frames, big).mean_px < 0.2


def test_cammc_of_true_background_tracks_is_sub_pixel_and_measures_offsets(pan_clip):
    tracks = _background_tracks(pan_clip)
    assert cammc(pan_clip.frames, list(tracks.transpose(1, 0, 2))).mean_px < 0.2
    shifted = tracks.copy()
    shifted[1:] += (-3.0, 4.0)
    assert cammc(pan_clip.frames, list(shifted.transpose(1, 0, 2))).mean_px == pytest.approx(5.0, abs=0.25)


def test_background_fraction_is_one_for_a_pan_along_the_trajectory(pan_clip):
    tracks = _background_tracks(pan_clip)
    motion = background_motion(pan_clip.frames)
    true_step = np.hypot(60.0, 24.0) / (NUM_FRAMES - 1)
    np.testing.assert_allclose(motion.step_px, true_step, atol=0.1)
    assert motion.path_px == pytest.approx(np.hypot(60.0, 24.0), rel=0.02)
    # The content slides opposite to the camera pan.
    np.testing.assert_allclose(motion.displacement_px[-1], (-60.0, 24.0), atol=0.5)
    assert background_motion_fraction(motion, tracks) == pytest.approx(1.0, abs=0.03)


def test_background_fraction_is_zero_for_object_only_motion(object_clip):
    true = object_clip.sprite_centres()[:, 0]
    motion = background_motion(object_clip.frames, exclude_trajectories=[true])
    assert motion.path_px < 0.5
    assert background_motion_fraction(motion, true[:, None]) < 0.01


def test_background_grid_leaves_out_the_swept_region():
    path = np.stack([np.linspace(50, 300, 16), np.full(16, 128.0)], axis=1)[:, None]  # (T, 1, 2)
    grid = background_grid(256, 384, 16, exclude=path, exclusion_radius=30.0)
    full = background_grid(256, 384, 16)
    assert len(full) == 256
    distances = np.abs(grid[:, 1] - 128.0)
    inside_span = (grid[:, 0] >= 50) & (grid[:, 0] <= 300)
    assert distances[inside_span].min() > 30.0
    assert 0 < len(grid) < len(full)


def test_hold_policy_keeps_a_lost_point_where_it_was_last_seen():
    target = np.zeros((4, 1, 2))
    target[:, 0, 0] = [0.0, 1.0, 2.0, 3.0]
    tracked = target.copy()
    tracked[2:, 0, 0] = [50.0, 80.0]  # garbage after the tracker lost the point
    visible = np.array([[True], [True], [False], [False]])
    held = trajectory_distance(tracked, visible, target, invisible="hold")
    # Held at x = 1: distances 0 (frame 1), 1 (frame 2), 2 (frame 3).
    assert held.mean_px == pytest.approx(1.0)
    np.testing.assert_allclose(held.tracked[:, 0, 0], [0.0, 1.0, 1.0, 1.0])
    assert held.visible_fraction == pytest.approx(1 / 3)
    excluded = trajectory_distance(tracked, visible, target, invisible="exclude")
    assert excluded.mean_px == pytest.approx(0.0)
    raw = trajectory_distance(tracked, visible, target, invisible="tracker")
    assert raw.mean_px == pytest.approx((0.0 + 48.0 + 77.0) / 3)
    with_first = trajectory_distance(tracked, visible, target, include_first_frame=True)
    assert with_first.mean_px == pytest.approx(3.0 / 4)


def test_per_track_means_and_path_length():
    target = np.zeros((3, 2, 2))
    target[:, 1, 1] = [0.0, 3.0, 7.0]
    tracked = target.copy()
    tracked[1:, 0, 0] += 2.0
    result = trajectory_distance(tracked, np.ones((3, 2), bool), target)
    np.testing.assert_allclose(result.per_track_px, [2.0, 0.0])
    np.testing.assert_allclose(path_length(target), [0.0, 7.0])


def test_bad_inputs_raise_clear_errors(object_clip):
    with pytest.raises(EvaluationError, match="no trajectories"):
        objmc(object_clip.frames, [])
    with pytest.raises(EvaluationError, match="track 0"):
        objmc(object_clip.frames, [np.zeros((3, 3))])
    with pytest.raises(EvaluationError, match="must both be"):
        trajectory_distance(np.zeros((3, 1, 2)), np.ones((3, 1), bool), np.zeros((4, 1, 2)))
    with pytest.raises(EvaluationError, match="every point was lost"):
        trajectory_distance(
            np.zeros((3, 1, 2)), np.array([[True], [False], [False]]), np.ones((3, 1, 2)), "exclude"
        )
    with pytest.raises(ValueError, match="uint8"):
        track(object_clip.frames.astype(np.float32), np.zeros((1, 2)))
    still = background_motion(object_clip.frames)
    with pytest.raises(EvaluationError, match="no input trajectory moves"):
        background_motion_fraction(still, np.zeros((4, 2, 2)))


def test_small_frames_are_tracked_enlarged_and_mapped_back():
    from imageconductor.curation.tracking import LucasKanadeTracker
    from imageconductor.evaluation.tracking import EnlargingLucasKanadeTracker, build_tracker
    from imageconductor.synthetic import random_clip_spec

    tracker = build_tracker()
    assert isinstance(tracker, EnlargingLucasKanadeTracker)
    assert tracker.factor(64, 96) == 2 and tracker.factor(48, 64) == 3 and tracker.factor(256, 384) == 1

    # Fast small sprites in 96x64 clips (seeds where plain LK loses some): exact centre tracks.
    plain_errors, enlarged_errors = [], []
    for seed in (10002, 10005, 10007):
        clip = render_clip(random_clip_spec(seed, "object", 8, 96, 64, texture_scale=3.0, motion_scale=3.0))
        moving = [i for i, sprite in enumerate(clip.spec.sprites) if not sprite.motion.is_static]
        truth = clip.sprite_centres()[:, moving]
        for errors, chosen in ((plain_errors, LucasKanadeTracker()), (enlarged_errors, tracker)):
            result = track(clip.frames, truth[0], tracker=chosen)
            errors.append(np.linalg.norm(result.positions - truth, axis=-1).mean())
    assert np.mean(enlarged_errors) < 0.25 * np.mean(plain_errors)

    # Positions come back in the given frames' pixels: a still textured frame keeps its points in place
    # (mapping there and back that disagree by half a pixel would move them by 0.25 px at factor 2).
    clip = render_clip(random_clip_spec(3, "object", 2, 96, 64, texture_scale=3.0))
    still = np.repeat(clip.frames[:1], 4, axis=0)
    points = np.array([[20.0, 20.0], [50.5, 30.25], [75.0, 44.0]])
    result = track(still, points, tracker=tracker)
    np.testing.assert_allclose(result.positions, np.broadcast_to(points, result.positions.shape), atol=0.05)
    assert result.visible.all()
