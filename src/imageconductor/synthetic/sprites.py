"""Sprite shapes and colours: anti-aliased RGBA cut-outs with a textured fill and a dark outline.

A sprite image is square, ``side x side`` pixels, with the shape centred at ``((side - 1) / 2,
(side - 1) / 2)``; that centre is the sprite's anchor, the point that motion paths move.
"""

from __future__ import annotations

import cv2
import numpy as np

from imageconductor.synthetic.textures import fractal_noise

__all__ = ["COLOURS", "SHAPES", "render_sprite", "shape_polygon", "sprite_side"]

# Named colours (RGB) whose names go into captions.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 85, 225),
    "yellow": (240, 210, 40),
    "orange": (245, 135, 25),
    "purple": (135, 55, 195),
    "cyan": (40, 205, 220),
    "magenta": (225, 45, 185),
    "white": (242, 242, 242),
    "black": (28, 28, 28),
    "pink": (250, 150, 185),
    "brown": (135, 80, 40),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon", "pentagon", "cross")

_SUPERSAMPLE = 4


def sprite_side(size: float) -> int:
    """Side in pixels of the square image holding a sprite of bounding diameter ``size``."""
    return int(np.ceil(size)) + 4


def _regular_polygon(sides: int, radius: float, rotation: float) -> np.ndarray:
    angles = rotation + 2 * np.pi * np.arange(sides) / sides
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def shape_polygon(shape: str, size: float) -> np.ndarray:
    """Outline of ``shape`` (bounding diameter ``size``) as (K, 2) vertices around the origin, y down."""
    radius = size / 2.0
    up = -np.pi / 2
    if shape == "circle":
        return _regular_polygon(96, radius, 0.0)
    if shape == "square":
        return _regular_polygon(4, radius, np.pi / 4)
    if shape == "diamond":
        return _regular_polygon(4, radius, 0.0) * np.array([0.75, 1.0])
    if shape == "triangle":
        return _regular_polygon(3, radius, up) + np.array([0.0, radius * 0.2])
    if shape == "pentagon":
        return _regular_polygon(5, radius, up)
    if shape == "hexagon":
        return _regular_polygon(6, radius, 0.0)
    if shape == "star":
        outer = _regular_polygon(5, radius, up)
        inner = _regular_polygon(5, radius * 0.45, up + np.pi / 5)
        return np.stack([outer, inner], axis=1).reshape(-1, 2)
    if shape == "cross":
        arm = radius * 0.36
        return np.array(
            [
                [-arm, -radius],
                [arm, -radius],
                [arm, -arm],
                [radius, -arm],
                [radius, arm],
                [arm, arm],
                [arm, radius],
                [-arm, radius],
                [-arm, arm],
                [-radius, arm],
                [-radius, -arm],
                [-arm, -arm],
            ]
        )
    raise ValueError(f"unknown sprite shape {shape!r}; choose from {', '.join(SHAPES)}")


def _shape_alpha(shape: str, size: float, side: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of ``shape`` centred in a ``side x side`` image."""
    big = side * _SUPERSAMPLE
    centre = (side - 1) / 2.0
    # Supersampled pixel k covers original coordinates [k/s - 0.5, (k+1)/s - 0.5).
    vertices = (shape_polygon(shape, size) + centre + 0.5) * _SUPERSAMPLE - 0.5
    canvas = np.zeros((big, big), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(vertices * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return cv2.resize(canvas, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def render_sprite(rng: np.random.Generator, shape: str, colour: str, size: float) -> np.ndarray:
    """Render a sprite as straight (not premultiplied) RGBA float32 ``(side, side, 4)`` (RGB 0..255, alpha 0..1).

    The fill is the named colour modulated by fine noise (so the interior is trackable), with a darker
    rim about two pixels wide just inside the outline.
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown sprite colour {colour!r}; choose from {', '.join(COLOURS)}")
    if size < 6:
        raise ValueError(f"sprite size must be at least 6 pixels, got {size}")
    side = sprite_side(size)
    alpha = _shape_alpha(shape, size, side)
    detail = fractal_noise(rng, side, side, max(6.0, size / 3.0), 2.5, persistence=0.8)
    base = np.array(COLOURS[colour], dtype=np.float32)
    # Pull the base away from 0 and 255 so the +-40 texture swing never clips flat.
    rgb = np.clip(base, 45.0, 210.0) + 40.0 * np.tanh(detail)[..., None]
    inner = cv2.erode((alpha > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    rim = cv2.GaussianBlur(1.0 - inner, (5, 5), 1.0)[..., None]
    rim_colour = base * 0.3 if base.mean() >= 50 else np.full(3, 150.0, dtype=np.float32)
    rgb = rgb * (1.0 - rim) + rim_colour * rim
    return np.concatenate([np.clip(rgb, 0, 255), alpha[..., None]], axis=-1).astype(np.float32)
