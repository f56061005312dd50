"""Draw random clip specifications: camera paths, sprite motions and palettes, all seeded."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from imageconductor.synthetic.motion import SPEED_PROFILES, CameraMotion, ObjectMotion
from imageconductor.synthetic.spec import CLIP_KINDS, ClipSpec, SpriteSpec
from imageconductor.synthetic.sprites import COLOURS, SHAPES
from imageconductor.synthetic.textures import SceneStyle, random_scene_style

__all__ = ["random_camera_motion", "random_clip_spec", "random_object_motion"]

# Speeds are drawn log-uniformly in pixels per frame at a short side of 256 and scale with the view.
_SPEED_RANGE = (0.3, 4.0)
_ZOOM_RATE_RANGE = (0.002, 0.007)  # |log zoom| per frame
_MAX_LOG_ZOOM = np.log(1.3)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _compass_direction(rng: np.random.Generator) -> np.ndarray:
    """A unit vector near one of the 8 compass directions (within +-10 degrees), so captions are exact."""
    angle = rng.integers(0, 8) * np.pi / 4 + np.deg2rad(rng.uniform(-10.0, 10.0))
    return np.array([np.cos(angle), np.sin(angle)])


def random_camera_motion(
    rng: np.random.Generator, num_frames: int, scale: float = 1.0, motion_scale: float = 1.0
) -> CameraMotion:
    """A moving camera: a pan (50%), a zoom (20%) or both (30%), with a random speed profile.

    ``scale`` multiplies pan speeds (the view's size), ``motion_scale`` pan speeds and zoom rates alike."""
    steps = max(num_frames - 1, 1)
    choice = rng.random()
    pan = (0.0, 0.0)
    zoom = 1.0
    if choice < 0.8:
        speed = _log_uniform(rng, *_SPEED_RANGE) * scale * motion_scale
        pan = tuple(float(v) for v in _compass_direction(rng) * speed * steps)
    if choice >= 0.5:
        log_zoom = min(_log_uniform(rng, *_ZOOM_RATE_RANGE) * motion_scale * steps, _MAX_LOG_ZOOM)
        zoom = float(np.exp(log_zoom if rng.random() < 0.5 else -log_zoom))
    return CameraMotion(pan=pan, zoom=zoom, profile=str(rng.choice(SPEED_PROFILES)))


def random_object_motion(
    rng: np.random.Generator, num_frames: int, scale: float = 1.0, max_distance: float | None = None
) -> ObjectMotion:
    """A moving sprite path (line, curve, zig-zag or stop) at a random speed and compass direction."""
    steps = max(num_frames - 1, 1)
    distance = _log_uniform(rng, *_SPEED_RANGE) * scale * steps
    if max_distance is not None:
        distance = min(distance, max_distance)
    displacement = tuple(float(v) for v in _compass_direction(rng) * max(distance, 1.0))
    path = str(rng.choice(["line", "curve", "zigzag", "stop"]))
    profile = str(rng.choice(SPEED_PROFILES))
    if path == "curve":
        return ObjectMotion(
            path, displacement, profile, bend=float(rng.uniform(0.15, 0.35) * rng.choice([-1, 1]))
        )
    if path == "zigzag":
        legs = int(rng.integers(2, 6))
        amplitude = float(rng.uniform(0.1, 0.25) * distance)
        return ObjectMotion(path, displacement, profile, zigzags=legs, amplitude=amplitude)
    if path == "stop":
        begin = float(rng.uniform(0.3, 0.6))
        end = 1.0 if rng.random() < 0.5 else begin + float(rng.uniform(0.15, 0.3))
        return ObjectMotion(path, displacement, profile, pause=(begin, end))
    return ObjectMotion(path, displacement, profile)


def _start_inside(
    rng: np.random.Generator, displacement: tuple[float, float], margin: float, width: int, height: int
) -> tuple[float, float]:
    """A start so that start and end of the displacement both lie ``margin`` inside the view."""
    start = []
    for extent, delta in ((width, displacement[0]), (height, displacement[1])):
        low = margin - min(delta, 0.0)
        high = extent - 1 - margin - max(delta, 0.0)
        start.append(float(rng.uniform(low, high)) if high > low else (extent - 1) / 2.0 - delta / 2.0)
    return start[0], start[1]


def random_clip_spec(
    seed: int,
    kind: str | None = None,
    num_frames: int = 32,
    width: int = 384,
    height: int = 256,
    num_sprites: int | None = None,
    style: SceneStyle | None = None,
    texture_scale: float = 1.0,
    motion_scale: float = 1.0,
    sprite_scale: float = 1.0,
) -> ClipSpec:
    """Draw a random ClipSpec from ``seed`` (same arguments -> same spec).

    ``kind`` is "camera", "object", "mixed" or None (drawn uniformly); 1-4 sprites of distinct shapes and
    colours unless ``num_sprites`` is given; ``style`` overrides the random palette. ``texture_scale``
    multiplies the background's finest noise cell (> 1: smoother scenes, easier for a small autoencoder;
    the rest of the spec does not change). ``motion_scale`` multiplies every speed: camera pans and zoom
    rates, and sprite path lengths (still kept inside the view; > 1: faster motion, e.g. for short clips).
    ``sprite_scale`` multiplies every sprite's size (> 1: larger objects, which a small frame and a coarse
    latent grid resolve better), up to the view's short side less 4 pixels.
    """
    if not texture_scale > 0:
        raise ValueError(f"texture_scale must be > 0, got {texture_scale}")
    if not motion_scale > 0:
        raise ValueError(f"motion_scale must be > 0, got {motion_scale}")
    if not sprite_scale > 0:
        raise ValueError(f"sprite_scale must be > 0, got {sprite_scale}")
    if kind is not None and kind not in CLIP_KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; choose from {', '.join(CLIP_KINDS)} or None")
    if num_sprites is not None and not 1 <= num_sprites <= min(len(SHAPES), 8):
        raise ValueError(f"num_sprites must be in [1, 8], got {num_sprites}")
    rng = np.random.default_rng([int(seed), 7])
    kind = kind or str(rng.choice(CLIP_KINDS))
    style = style or random_scene_style(rng)
    if texture_scale != 1.0:
        style = replace(style, finest_cell=style.finest_cell * texture_scale)
    scale = min(width, height) / 256.0
    count = num_sprites or int(rng.integers(1, 5))
    shapes = rng.choice(SHAPES, size=count, replace=False)
    colours = rng.choice(list(COLOURS), size=count, replace=count > len(COLOURS))

    camera = CameraMotion()
    if kind in ("camera", "mixed"):
        camera = random_camera_motion(rng, num_frames, scale, motion_scale)
    moving = np.zeros(count, dtype=bool)
    if kind in ("object", "mixed"):
        moving = rng.random(count) < 0.75
        moving[rng.integers(0, count)] = True

    sprites = []
    for index in range(count):
        size = float(rng.uniform(0.16, 0.3) * min(width, height) * sprite_scale)
        size = max(6.0, min(size, min(width, height) - 4.0))
        margin = size / 2.0 + 2.0
        motion = ObjectMotion()
        if moving[index]:
            room = min(width, height) - 2 * margin
            motion = random_object_motion(rng, num_frames, scale * motion_scale, max_distance=max(room, 4.0))
        start = _start_inside(rng, motion.displacement, margin, width, height)
        sprites.append(SpriteSpec(str(shapes[index]), str(colours[index]), size, start, motion))
    return ClipSpec(
        seed=int(seed),
        kind=kind,
        num_frames=num_frames,
        width=width,
        height=height,
        camera=camera,
        sprites=tuple(sprites),
        style=style,
    )
