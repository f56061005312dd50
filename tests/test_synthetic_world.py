"""Synthetic world: determinism, exact ground truth checked against the pixels, visibility, motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from imageconductor.synthetic import (
    BACKGROUND,
    CameraMotion,
    ClipSpec,
    ObjectMotion,
    SceneStyle,
    SpriteSpec,
    random_clip_spec,
    render_clip,
)

WIDTH, HEIGHT = 192, 128


def mixed_spec(seed: int = 5, num_frames: int = 16) -> ClipSpec:
    """A pan + zoom camera with two moving sprites, the second in front of the first."""
    return ClipSpec(
        seed=seed,
        kind="mixed",
        num_frames=num_frames,
        width=WIDTH,
        height=HEIGHT,
        camera=CameraMotion(pan=(23.5, -9.25), zoom=1.2, profile="ease_in_out"),
        sprites=(
            SpriteSpec("star", "red", 44, (60, 64), ObjectMotion("curve", (40, 12), bend=0.3)),
            SpriteSpec("square", "blue", 32, (140, 40), ObjectMotion("zigzag", (-30, 30), amplitude=6)),
        ),
    )


@pytest.fixture(scope="module")
def mixed_clip():
    return render_clip(mixed_spec())


def sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, 3) of an RGB image at float points (N, 2)."""
    map_x = points[:, 0].astype(np.float32).reshape(1, -1)
    map_y = points[:, 1].astype(np.float32).reshape(1, -1)
    return cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)[0]


def patch_error(clip, centre: np.ndarray, frame: int, shift=(0.0, 0.0), radius: int = 3) -> float | None:
    """Mean squared difference between the (2r+1)^2 patch at integer ``centre`` in frame 0 and the
    pixels of ``frame`` at the ground-truth positions of those patch pixels (plus ``shift``); None when
    the patch straddles two layers or part of it is hidden in ``frame``."""
    offsets = np.stack(np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1)), -1)
    pixels = (np.asarray(centre)[None, None, :] + offsets).reshape(-1, 2).astype(np.float64)
    if len(set(clip.layer_at(pixels).tolist())) > 1:
        return None
    reference = clip.frames[0][pixels[:, 1].astype(int), pixels[:, 0].astype(int)].astype(np.float64)
    positions, visible = clip.track_points(pixels, frame=0)
    if not visible[frame].all():
        return None
    moved = sample(clip.frames[frame], positions[frame] + np.asarray(shift))
    return float(((moved - reference) ** 2).mean())


def test_same_seed_same_frames_different_seed_different_frames():
    first = render_clip(random_clip_spec(3, num_frames=6, width=WIDTH, height=HEIGHT))
    again = render_clip(random_clip_spec(3, num_frames=6, width=WIDTH, height=HEIGHT))
    other = render_clip(random_clip_spec(4, num_frames=6, width=WIDTH, height=HEIGHT))
    np.testing.assert_array_equal(first.frames, again.frames)
    assert first.caption == again.caption
    assert np.abs(first.frames.astype(int) - other.frames.astype(int)).mean() > 10


def test_spec_json_round_trip_renders_identically(mixed_clip):
    restored = ClipSpec.from_dict(__import__("json").loads(mixed_clip.spec.to_json()))
    assert restored == mixed_clip.spec
    np.testing.assert_array_equal(render_clip(restored).frames, mixed_clip.frames)


def test_any_size_and_length():
    spec = random_clip_spec(1, kind="camera", num_frames=1, width=97, height=61)
    clip = render_clip(spec)
    assert clip.frames.shape == (1, 61, 97, 3)
    assert clip.mean_motion().shape == (0,)
    big = render_clip(random_clip_spec(2, num_frames=3, width=400, height=300))
    assert big.frames.shape == (3, 300, 400, 3)


def test_background_has_texture_everywhere(mixed_clip):
    # Minimum eigenvalue of the structure tensor over LK-sized windows: no flat region anywhere.
    gray = cv2.cvtColor(mixed_clip.frames[0], cv2.COLOR_RGB2GRAY)
    strength = cv2.cornerMinEigenVal(gray, 15, 3)[10:-10, 10:-10]
    flat = cv2.cornerMinEigenVal(np.full_like(gray, 128), 15, 3).max()
    assert np.percentile(strength, 1) > 1e-5 > flat


def test_ground_truth_matches_pixels_on_background_and_sprites(mixed_clip):
    clip = mixed_clip
    rng = np.random.default_rng(0)
    candidates = rng.integers([8, 8], [WIDTH - 8, HEIGHT - 8], size=(60, 2))
    layers = clip.layer_at(candidates, frame=0)
    centres = np.rint(clip.sprite_centres()[0]).astype(int)
    points = np.concatenate([candidates[layers == BACKGROUND][:8], centres])
    checked = 0
    for index, point in enumerate(points):
        for frame in (5, 10, 15):
            right = patch_error(clip, point, frame)
            if right is None:
                continue
            shifts = [(2, 0), (0, 2), (-2, 0), (0, -2)]
            wrong = min(patch_error(clip, point, frame, shift) for shift in shifts)
            assert right < 0.15 * wrong, (index, frame, right, wrong)
            checked += 1
    assert checked >= 20


def test_sprite_points_follow_sprite_and_background_points_follow_camera(mixed_clip):
    clip = mixed_clip
    centres = clip.sprite_centres()
    positions, _ = clip.track_points(centres[0], frame=0)
    np.testing.assert_allclose(positions, centres, atol=1e-9)
    # A background point: the camera transform of its scene position.
    point = np.array([[5.0, 120.0]])
    assert clip.layer_at(point)[0] == BACKGROUND
    positions, _ = clip.track_points(point)
    expected = point @ clip.camera[:, :, :2].transpose(0, 2, 1) + clip.camera[:, None, :, 2]
    np.testing.assert_allclose(positions, expected, atol=1e-9)


def test_tracking_from_a_later_frame_agrees(mixed_clip):
    clip = mixed_clip
    points = np.array([[40.0, 30.0], [100.0, 70.0], *clip.sprite_centres()[0]])
    from_zero, visible = clip.track_points(points, frame=0)
    keep = visible[7]
    from_seven, _ = clip.track_points(from_zero[7][keep], frame=7)
    np.testing.assert_allclose(from_seven, from_zero[:, keep], atol=1e-6)


def test_point_leaving_the_frame_becomes_invisible():
    spec = ClipSpec(
        seed=1,
        kind="camera",
        num_frames=12,
        width=WIDTH,
        height=HEIGHT,
        camera=CameraMotion(pan=(55.0, 0.0)),
        sprites=(SpriteSpec("circle", "green", 20, (150, 100)),),
    )
    clip = render_clip(spec)
    positions, visible = clip.track_points(np.array([[30.0, 20.0], [12.0, 60.0]]))
    # The view pans right 5 px per frame, so content slides left 5 px per frame.
    np.testing.assert_allclose(positions[:, :, 0], np.array([30.0, 12.0]) - 5.0 * np.arange(12)[:, None])
    inside = positions[:, :, 0] >= 0
    np.testing.assert_array_equal(visible, inside)
    assert visible[0].all() and not visible[-1].any()


def test_background_point_covered_by_passing_sprite_is_invisible():
    radius = 15.0
    spec = ClipSpec(
        seed=2,
        kind="object",
        num_frames=21,
        width=WIDTH,
        height=HEIGHT,
        sprites=(SpriteSpec("circle", "yellow", 2 * radius, (40, 64), ObjectMotion("line", (100, 0))),),
    )
    clip = render_clip(spec)
    point = np.array([[90.0, 60.0]])
    positions, visible = clip.track_points(point)
    np.testing.assert_allclose(positions[:, 0], np.repeat(point, 21, axis=0))
    distance = np.linalg.norm(clip.sprite_centres()[:, 0] - point[0], axis=1)
    clear = np.abs(distance - radius) > 1.0
    np.testing.assert_array_equal(visible[clear, 0], distance[clear] > radius)
    assert (~visible[:, 0]).sum() >= 4 and visible[0, 0] and visible[-1, 0]
    # The pixel really shows the sprite while hidden: far from the background's own colour.
    hidden = np.flatnonzero(~visible[:, 0] & clear)
    background = clip.frames[0][60, 90].astype(float)
    assert all(np.abs(clip.frames[t][60, 90].astype(float) - background).sum() > 30 for t in hidden)


def test_sprite_in_front_hides_sprite_behind():
    spec = ClipSpec(
        seed=4,
        kind="object",
        num_frames=15,
        width=WIDTH,
        height=HEIGHT,
        sprites=(
            SpriteSpec("square", "blue", 30, (96, 64)),
            SpriteSpec("circle", "red", 30, (30, 64), ObjectMotion("line", (130, 0))),
        ),
    )
    clip = render_clip(spec)
    back_point, front_point = np.array([96.0, 64.0]), clip.sprite_centres()[0, 1]
    assert clip.layer_at(np.array([back_point, front_point])).tolist() == [0, 1]
    _, visible = clip.track_points(np.array([back_point, front_point]))
    assert visible[:, 1].all()
    assert visible[0, 0] and visible[-1, 0] and not visible[7, 0]


def test_camera_only_clip_keeps_sprites_fixed_in_the_scene():
    for seed in range(3):
        clip = render_clip(random_clip_spec(seed, kind="camera", num_frames=8, width=WIDTH, height=HEIGHT))
        assert clip.kind == "camera"
        np.testing.assert_array_equal(clip.anchors, clip.anchors[:, :1].repeat(8, axis=1))
        # Sprite points and background points at the same image spot move identically.
        sprite_points = clip.sprite_centres()[0]
        positions, _ = clip.track_points(sprite_points)
        expected = sprite_points @ clip.camera[:, :, :2].transpose(0, 2, 1) + clip.camera[:, None, :, 2]
        np.testing.assert_allclose(positions, expected, atol=1e-9)
        assert np.abs(clip.camera - clip.camera[0]).max() > 0.5 / WIDTH


def test_object_only_clip_has_a_still_camera():
    clip = render_clip(random_clip_spec(6, kind="object", num_frames=8, width=WIDTH, height=HEIGHT))
    np.testing.assert_array_equal(clip.camera, np.broadcast_to(np.eye(2, 3), clip.camera.shape))
    assert np.abs(np.diff(clip.anchors, axis=1)).max() > 0


def test_mean_motion_of_a_pure_pan_is_the_pan_speed():
    speed = np.array([3.0, -4.0])  # 5 px per frame
    spec = ClipSpec(
        seed=3,
        kind="camera",
        num_frames=9,
        width=WIDTH,
        height=HEIGHT,
        camera=CameraMotion(pan=tuple(speed * 8)),
        sprites=(SpriteSpec("hexagon", "cyan", 30, (50, 50)),),
    )
    clip = render_clip(spec)
    np.testing.assert_allclose(clip.mean_motion(), 5.0, atol=1e-9)
    np.testing.assert_allclose(clip.rms_motion(), 5.0, atol=1e-9)
    np.testing.assert_allclose(clip.camera_motion_per_frame(), 5.0, atol=1e-9)
    np.testing.assert_allclose(clip.true_flow(3)[40, 100], -speed, atol=1e-9)


def test_mean_motion_of_a_zoom_matches_numeric_flow():
    spec = ClipSpec(
        seed=3,
        kind="camera",
        num_frames=5,
        width=WIDTH,
        height=HEIGHT,
        camera=CameraMotion(zoom=1.1**4),
        sprites=(SpriteSpec("hexagon", "cyan", 30, (50, 50)),),
    )
    clip = render_clip(spec)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    from_centre = np.hypot(xs - (WIDTH - 1) / 2, ys - (HEIGHT - 1) / 2)
    # Each frame is 1.1x the previous around the view centre: every pixel moves 0.1x its radius.
    np.testing.assert_allclose(clip.mean_motion(), 0.1 * from_centre.mean(), rtol=1e-9)
    np.testing.assert_allclose(clip.rms_motion(), 0.1 * np.sqrt((from_centre**2).mean()), rtol=1e-9)


def test_mean_motion_of_one_moving_sprite_weights_its_area():
    spec = ClipSpec(
        seed=8,
        kind="object",
        num_frames=6,
        width=WIDTH,
        height=HEIGHT,
        sprites=(SpriteSpec("star", "orange", 50, (60, 60), ObjectMotion("line", (10, 0))),),
    )
    clip = render_clip(spec)
    for frame, (motion, rms) in enumerate(zip(clip.mean_motion(), clip.rms_motion(), strict=True)):
        area = (clip.layer_map(frame) == 0).sum()
        assert motion == pytest.approx(2.0 * area / (WIDTH * HEIGHT))
        assert rms == pytest.approx(2.0 * np.sqrt(area / (WIDTH * HEIGHT)))
        # The layer map agrees with what was drawn: the star's pixels are orange-ish, not background.
        assert 0.015 < area / (WIDTH * HEIGHT) < 0.06


def test_mean_motion_ranks_clips_by_speed():
    speeds = [0.5, 1.0, 2.0, 4.0]
    motions = []
    for speed in speeds:
        spec = ClipSpec(
            seed=9,
            kind="mixed",
            num_frames=5,
            width=WIDTH,
            height=HEIGHT,
            camera=CameraMotion(pan=(0.0, speed * 4)),
            sprites=(SpriteSpec("circle", "red", 30, (90, 60), ObjectMotion("line", (speed * 8, 0))),),
        )
        motions.append(render_clip(spec).mean_motion().mean())
    assert np.all(np.diff(motions) > 0)


def test_lucas_kanade_tracks_the_world_to_subpixel_accuracy():
    clip = render_clip(random_clip_spec(11, kind="mixed", num_frames=16))
    grid = np.stack(np.meshgrid(np.linspace(16, 367, 12), np.linspace(16, 239, 8)), -1).reshape(-1, 2)
    truth, visible = clip.track_points(grid)
    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in clip.frames]
    points = grid.astype(np.float32).reshape(-1, 1, 2)
    errors = []
    still_visible = visible[0].copy()
    for t in range(1, clip.num_frames):
        points, status, _ = cv2.calcOpticalFlowPyrLK(grays[t - 1], grays[t], points, None, winSize=(21, 21))
        still_visible &= visible[t] & (status.ravel() == 1)
        errors.append(np.linalg.norm(points.reshape(-1, 2) - truth[t], axis=1)[still_visible])
    assert np.median(np.concatenate(errors)) < 0.5


def test_style_changes_the_palette():
    warm = SceneStyle(base_hue=20.0)
    cool = SceneStyle(base_hue=220.0)
    sprite = (SpriteSpec("circle", "white", 20, (10, 10)),)
    base = dict(seed=1, kind="camera", num_frames=1, width=64, height=64, camera=CameraMotion(zoom=1.1))
    red_mean = render_clip(ClipSpec(**base, sprites=sprite, style=warm)).frames.reshape(-1, 3).mean(0)
    blue_mean = render_clip(ClipSpec(**base, sprites=sprite, style=cool)).frames.reshape(-1, 3).mean(0)
    assert red_mean[0] > red_mean[2] and blue_mean[2] > blue_mean[0]


def test_layer_map_agrees_with_point_queries_and_with_the_pixels(mixed_clip):
    clip = mixed_clip
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
    for frame in (0, 9):
        layers = clip.layer_map(frame)
        np.testing.assert_array_equal(layers.ravel(), clip.layer_at(pixels, frame))
        # The blue square (layer 1) is drawn where the map says: bluer there than on the red star.
        image = clip.frames[frame].astype(float)
        blueness = image[..., 2] - image[..., 0]
        assert blueness[layers == 1].mean() > blueness[layers == 0].mean() + 50


def test_texture_scale_smooths_the_background_and_keeps_the_rest_of_the_spec():
    plain = random_clip_spec(11, kind="object", num_frames=4, width=96, height=64)
    smooth = random_clip_spec(11, kind="object", num_frames=4, width=96, height=64, texture_scale=3.0)
    assert smooth.style.finest_cell == pytest.approx(3.0 * plain.style.finest_cell)
    assert smooth.sprites == plain.sprites and smooth.camera == plain.camera
    assert smooth.caption == plain.caption

    # Smoother: less energy in the finest detail (mean |Laplacian| of the first frame's luminance).
    def detail(spec):
        grey = cv2.cvtColor(render_clip(spec).frames[0], cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())

    assert detail(smooth) < 0.6 * detail(plain)
    with pytest.raises(ValueError, match="texture_scale"):
        random_clip_spec(11, texture_scale=0)


def test_sprite_scale_enlarges_every_sprite_and_keeps_the_rest_of_the_spec():
    plain = random_clip_spec(12, kind="object", num_frames=4, width=96, height=64, num_sprites=3)
    large = random_clip_spec(
        12, kind="object", num_frames=4, width=96, height=64, num_sprites=3, sprite_scale=2.0
    )
    assert [s.size for s in large.sprites] == pytest.approx([2.0 * s.size for s in plain.sprites])
    assert [(s.shape, s.colour, s.motion) for s in large.sprites] == [
        (s.shape, s.colour, s.motion) for s in plain.sprites
    ]
    assert large.camera == plain.camera and large.style == plain.style and large.caption == plain.caption

    # Drawn larger: the sprites cover about four times the pixels of the first frame.
    def covered(spec):
        return int((render_clip(spec).layer_map(0) != BACKGROUND).sum())

    assert 2.5 * covered(plain) < covered(large) < 5.0 * covered(plain)
    # Never larger than the view's short side less 4 pixels, so every sprite still fits.
    huge = random_clip_spec(12, kind="object", num_frames=4, width=96, height=64, sprite_scale=50.0)
    assert all(s.size == 60.0 for s in huge.sprites)
    with pytest.raises(ValueError, match="sprite_scale"):
        random_clip_spec(12, sprite_scale=0)


@pytest.mark.parametrize("kind", ["camera", "object"])
def test_motion_scale_multiplies_every_speed_and_keeps_the_rest(kind):
    seeds = range(40, 60)
    plain = [random_clip_spec(s, kind=kind, num_frames=8, width=96, height=64) for s in seeds]
    fast = [
        random_clip_spec(s, kind=kind, num_frames=8, width=96, height=64, motion_scale=3.0) for s in seeds
    ]
    for slow_spec, fast_spec in zip(plain, fast, strict=True):
        assert fast_spec.style == slow_spec.style and fast_spec.caption == slow_spec.caption
        assert np.allclose(fast_spec.camera.pan, 3.0 * np.asarray(slow_spec.camera.pan))
        # zoom rates triple too, up to the world's cap on the total zoom (1.3x)
        slow_zoom, fast_zoom = abs(np.log(slow_spec.camera.zoom)), abs(np.log(fast_spec.camera.zoom))
        assert fast_zoom == pytest.approx(min(3.0 * slow_zoom, np.log(1.3)))
        for slow, quick in zip(slow_spec.sprites, fast_spec.sprites, strict=True):
            assert (quick.shape, quick.colour, quick.size) == (slow.shape, slow.colour, slow.size)
            assert quick.motion.path == slow.motion.path
            # path length triples unless the sprite would leave the view (then it is capped)
            room = min(96, 64) - 2 * (slow.size / 2 + 2)
            slow_length, fast_length = (
                np.hypot(*slow.motion.displacement),
                np.hypot(*quick.motion.displacement),
            )
            if slow.motion.path != "static" and slow_length > 1.0:  # paths are >= 1 px long
                assert fast_length == pytest.approx(min(3.0 * slow_length, max(room, 4.0)))
    if kind == "object":
        lengths = [
            [np.hypot(*s.motion.displacement) for c in specs for s in c.sprites] for specs in (plain, fast)
        ]
        assert np.mean(lengths[1]) > 2.0 * np.mean(lengths[0])
    with pytest.raises(ValueError, match="motion_scale"):
        random_clip_spec(11, motion_scale=-1.0)
