"""The drawing canvas: the model frame enlarged for the screen, with every track drawn as an arrow."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from imageconductor.app.state import Drawing
from imageconductor.overlay import draw_paths

__all__ = ["DISPLAY_WIDTH", "blank_frame", "click_to_point", "describe_tracks", "display_scale", "render"]

#: The canvas is the model frame enlarged by a whole factor to about this many pixels wide.
DISPLAY_WIDTH = 640


def display_scale(width: int, target: int = DISPLAY_WIDTH) -> int:
    """The whole factor (at least 1) that enlarges a ``width``-pixel frame to about ``target`` pixels."""
    return max(1, math.floor(target / width + 0.5))


def blank_frame(width: int, height: int) -> np.ndarray:
    """A mid-grey model frame to draw on before an image is uploaded."""
    return np.full((height, width, 3), 128, dtype=np.uint8)


def click_to_point(index: Sequence[int], scale: int) -> tuple[float, float]:
    """A click at canvas pixel ``index = (x, y)`` as a point of the model frame."""
    return index[0] / scale, index[1] / scale


def render(frame: np.ndarray, drawing: Drawing) -> np.ndarray:
    """``frame`` (the model frame, uint8 ``(H, W, 3)``) enlarged by :func:`display_scale` with pixels kept
    sharp, and every track drawn in its colour: a path with an arrow at its end, a dot for a static point."""
    height, width = frame.shape[:2]
    if (width, height) != (drawing.width, drawing.height):
        raise ValueError(f"frame is {width}x{height} but the drawing is {drawing.width}x{drawing.height}")
    scale = display_scale(width)
    canvas = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    if not drawing.tracks:
        return canvas
    paths = [np.asarray(track.points, dtype=np.float64) * scale for track in drawing.tracks]
    return draw_paths(canvas, paths, colors=[track.color for track in drawing.tracks])


def describe_tracks(drawing: Drawing) -> str:
    """An HTML list of the tracks: colour swatch, number, kind, points, and which one clicks extend (the list's
    ``data-points`` holds the number of points in all)."""
    if not drawing.tracks:
        return f"<p>No tracks yet. Click on the image to draw (up to {drawing.max_tracks} tracks).</p>"
    items = []
    for index, track in enumerate(drawing.tracks):
        red, green, blue = track.color
        swatch = (
            f'<span style="display:inline-block;width:0.9em;height:0.9em;border-radius:0.2em;'
            f'background:rgb({red},{green},{blue});vertical-align:middle"></span>'
        )
        shape = "static point" if track.is_static else f"{len(track.points)} points"
        marker = " &larr; clicks add here" if index == drawing.current else ""
        items.append(f"<li>{swatch} Track {index + 1}: {html.escape(track.kind)}, {shape}{marker}</li>")
    footer = f"{len(drawing.tracks)} of {drawing.max_tracks} tracks"
    if drawing.current is None:
        footer += "; the next click starts a new track"
    points = sum(len(track.points) for track in drawing.tracks)
    return f'<ul class="track-list" data-points="{points}">{"".join(items)}</ul><p>{footer}.</p>'
