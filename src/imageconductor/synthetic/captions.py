"""Short English captions for synthetic clips ("a red star moves right, camera pans up")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imageconductor.synthetic.motion import CameraMotion, ObjectMotion

__all__ = ["camera_phrase", "caption_for", "direction_word", "noun_phrase", "object_phrase"]

_DIRECTIONS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")


def direction_word(dx: float, dy: float) -> str:
    """Compass word of an image-space vector (y down): one of 8 directions, e.g. "up-left"."""
    if dx == 0 and dy == 0:
        raise ValueError("a zero vector has no direction")
    sector = int(np.round(np.arctan2(dy, dx) / (np.pi / 4))) % 8
    return _DIRECTIONS[sector]


def noun_phrase(colour: str, shape: str) -> str:
    """E.g. "a red star", "an orange circle" (the article follows the colour's first letter)."""
    article = "an" if colour[:1].lower() in "aeiou" else "a"
    return f"{article} {colour} {shape}"


def object_phrase(colour: str, shape: str, motion: ObjectMotion) -> str:
    """E.g. "a red star moves right", "a blue circle zig-zags up-left", "a green square stays still"."""
    subject = noun_phrase(colour, shape)
    if motion.is_static:
        return f"{subject} stays still"
    direction = direction_word(*motion.displacement)
    if motion.path == "line":
        return f"{subject} moves {direction}"
    if motion.path == "curve":
        return f"{subject} curves {direction}"
    if motion.path == "zigzag":
        return f"{subject} zig-zags {direction}"
    if motion.pause[1] >= 1.0:
        return f"{subject} moves {direction} and stops"
    return f"{subject} moves {direction}, pauses, then moves on"


def camera_phrase(camera: CameraMotion) -> str:
    """E.g. "camera pans up", "camera zooms in", "camera pans left and zooms out", "static camera"."""
    parts = []
    if camera.pan != (0.0, 0.0):
        parts.append(f"pans {direction_word(*camera.pan)}")
    if camera.zoom > 1.0:
        parts.append("zooms in")
    elif camera.zoom < 1.0:
        parts.append("zooms out")
    if not parts:
        return "static camera"
    return "camera " + " and ".join(parts)


def caption_for(camera: CameraMotion, sprites: Sequence[tuple[str, str, ObjectMotion]]) -> str:
    """Caption of a clip from its camera and its sprites given as (colour, shape, motion), back to front.

    Moving sprites are named with their motion; when none moves, the still sprites are listed instead.
    """
    moving = [object_phrase(c, s, m) for c, s, m in sprites if not m.is_static]
    if moving:
        objects = _join(moving)
    elif sprites:
        names = _join([noun_phrase(colour, shape) for colour, shape, _ in sprites])
        objects = f"{names} {'stays' if len(sprites) == 1 else 'stay'} still"
    else:
        objects = ""
    camera_text = camera_phrase(camera)
    return f"{objects}, {camera_text}" if objects else camera_text


def _join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
