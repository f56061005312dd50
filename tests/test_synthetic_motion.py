"""Motion paths, speed profiles, captions and clip specifications of the synthetic world."""

from __future__ import annotations

import numpy as np
import pytest

from imageconductor.synthetic import (
    SHAPES,
    CameraMotion,
    ClipSpec,
    ObjectMotion,
    SpriteSpec,
    camera_matrices,
    caption_for,
    direction_word,
    ease,
    random_clip_spec,
)


@pytest.mark.parametrize("profile", ["linear", "ease_in", "ease_out", "ease_in_out"])
def test_speed_profiles_run_from_0_to_1_monotonically(profile):
    progress = ease(profile, np.linspace(0, 1, 50))
    assert progress[0] == 0 and progress[-1] == pytest.approx(1)
    assert np.all(np.diff(progress) >= 0)


def test_speed_profiles_differ_in_where_they_are_fast():
    steps = {
        p: np.diff(ease(p, np.linspace(0, 1, 11))) for p in ["linear", "ease_in", "ease_out", "ease_in_out"]
    }
    np.testing.assert_allclose(steps["linear"], 0.1)
    assert steps["ease_in"][0] < steps["ease_in"][-1]
    assert steps["ease_out"][0] > steps["ease_out"][-1]
    assert steps["ease_in_out"][5] > max(steps["ease_in_out"][0], steps["ease_in_out"][-1])


def test_camera_matrices_pan_and_zoom():
    width, height = 100, 60
    matrices = camera_matrices(CameraMotion(pan=(20, -10), zoom=2.0), 3, width, height)
    np.testing.assert_allclose(matrices[0], np.eye(2, 3))
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    # Last frame: scene point centre + pan sits at the view centre, and distances double.
    end = matrices[-1]
    np.testing.assert_allclose(end[:, :2] @ (centre + [20, -10]) + end[:, 2], centre)
    np.testing.assert_allclose(end[:, :2], 2 * np.eye(2))
    np.testing.assert_allclose(matrices[1][0, 0], np.sqrt(2.0))


def test_line_and_stop_paths():
    line = ObjectMotion("line", (30, -15)).offsets(4)
    np.testing.assert_allclose(line, [[0, 0], [10, -5], [20, -10], [30, -15]])
    stops = ObjectMotion("stop", (40, 0), pause=(0.5, 1.0)).offsets(11)
    np.testing.assert_allclose(stops[:6, 0], np.linspace(0, 40, 6))
    np.testing.assert_allclose(stops[5:, 0], 40)
    pause = ObjectMotion("stop", (40, 0), pause=(0.25, 0.75)).offsets(9)
    np.testing.assert_allclose(pause[:, 0], [0, 10, 20, 20, 20, 20, 20, 30, 40])


def test_curve_and_zigzag_leave_the_straight_line():
    curve = ObjectMotion("curve", (40, 0), bend=0.25).offsets(5)
    np.testing.assert_allclose(curve[[0, -1]], [[0, 0], [40, 0]], atol=1e-12)
    np.testing.assert_allclose(curve[2], [20, 10])  # bulges by bend * distance, at the middle
    zigzag = ObjectMotion("zigzag", (40, 0), zigzags=4, amplitude=5).offsets(201)
    np.testing.assert_allclose(zigzag[[0, -1]], [[0, 0], [40, 0]], atol=1e-12)
    assert zigzag[:, 1].max() == pytest.approx(5, abs=0.05) and zigzag[:, 1].min() == pytest.approx(
        -5, abs=0.05
    )
    assert np.sum(np.diff(np.sign(np.round(zigzag[1:-1, 1], 6))) != 0) == 2  # + - + for 4 legs


def test_invalid_motion_parameters_raise():
    with pytest.raises(ValueError, match="profile"):
        ObjectMotion("line", (1, 0), profile="jerky")
    with pytest.raises(ValueError, match="path"):
        ObjectMotion("spiral", (1, 0))
    with pytest.raises(ValueError, match="pause"):
        ObjectMotion("stop", (1, 0), pause=(0.8, 0.2))
    with pytest.raises(ValueError, match="zoom"):
        CameraMotion(zoom=0.0)


@pytest.mark.parametrize(
    ("vector", "word"),
    [((1, 0), "right"), ((-1, 0), "left"), ((0, -1), "up"), ((0, 1), "down"), ((1, -1), "up-right")],
)
def test_direction_words_use_image_axes(vector, word):
    assert direction_word(*vector) == word


def test_caption_names_motions():
    sprites = [
        ("red", "star", ObjectMotion("line", (30, 0))),
        ("blue", "circle", ObjectMotion("zigzag", (0, 20), amplitude=3)),
        ("green", "square", ObjectMotion()),
    ]
    caption = caption_for(CameraMotion(pan=(0, -20)), sprites)
    assert caption == "a red star moves right and a blue circle zig-zags down, camera pans up"
    assert caption_for(CameraMotion(zoom=0.8), sprites[2:]) == "a green square stays still, camera zooms out"
    assert caption_for(CameraMotion(), sprites[:1]) == "a red star moves right, static camera"
    stop = ("pink", "cross", ObjectMotion("stop", (-9, 0), pause=(0.4, 1.0)))
    assert "moves left and stops" in caption_for(CameraMotion(pan=(3, 0), zoom=1.2), [stop])
    assert "pans right and zooms in" in caption_for(CameraMotion(pan=(3, 0), zoom=1.2), [stop])
    orange = ("orange", "star", ObjectMotion())
    assert caption_for(CameraMotion(), [orange]) == "an orange star stays still, static camera"


def test_random_captions_mention_every_moving_sprite_and_the_camera():
    for seed in range(30):
        spec = random_clip_spec(seed)
        caption = spec.caption
        for sprite in spec.sprites:
            if not sprite.motion.is_static:
                assert f"{sprite.colour} {sprite.shape}" in caption
                assert direction_word(*sprite.motion.displacement) in caption
        if spec.kind == "object":
            assert caption.endswith("static camera")
        else:
            assert "camera pans" in caption or "camera zooms" in caption


def test_random_specs_respect_their_kind_and_limits():
    kinds = set()
    for seed in range(40):
        spec = random_clip_spec(seed, width=320, height=240)
        kinds.add(spec.kind)
        assert 1 <= len(spec.sprites) <= 4
        assert len({s.shape for s in spec.sprites}) == len(spec.sprites)
        camera_moves = not spec.camera.is_static
        sprites_move = any(not s.motion.is_static for s in spec.sprites)
        assert (camera_moves, sprites_move) == {
            "camera": (True, False),
            "object": (False, True),
            "mixed": (True, True),
        }[spec.kind]
        for sprite in spec.sprites:
            assert sprite.shape in SHAPES
            assert 0 <= sprite.start[0] <= 319 and 0 <= sprite.start[1] <= 239
    assert kinds == {"camera", "object", "mixed"}
    assert random_clip_spec(7) == random_clip_spec(7)
    assert random_clip_spec(7) != random_clip_spec(8)
    assert random_clip_spec(7, kind="object").kind == "object"


def test_moving_sprites_end_inside_the_view():
    for seed in range(20):
        spec = random_clip_spec(seed, kind="object", num_frames=32)
        for sprite in spec.sprites:
            end = np.asarray(sprite.start) + sprite.motion.offsets(32)[-1]
            assert 0 <= end[0] <= spec.width - 1 and 0 <= end[1] <= spec.height - 1


def test_spec_rejects_inconsistent_kind_and_bad_values():
    still = SpriteSpec("circle", "red", 20, (10, 10))
    moving = SpriteSpec("circle", "red", 20, (10, 10), ObjectMotion("line", (5, 0)))
    with pytest.raises(ValueError, match="camera moving"):
        ClipSpec(seed=0, kind="camera", camera=CameraMotion(pan=(5, 0)), sprites=(moving,))
    with pytest.raises(ValueError, match="camera moving"):
        ClipSpec(seed=0, kind="object", camera=CameraMotion(pan=(5, 0)), sprites=(moving,))
    with pytest.raises(ValueError, match="camera moving"):
        ClipSpec(seed=0, kind="mixed", sprites=(moving,))
    with pytest.raises(ValueError, match="kind"):
        ClipSpec(seed=0, kind="static", sprites=(still,))
    with pytest.raises(ValueError, match="shape"):
        SpriteSpec("blob", "red", 20, (0, 0))
    with pytest.raises(ValueError, match="colour"):
        SpriteSpec("circle", "mauve", 20, (0, 0))
    with pytest.raises(ValueError, match="kind"):
        random_clip_spec(0, kind="zoom")
