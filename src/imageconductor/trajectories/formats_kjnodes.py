"""The ComfyUI KJNodes Spline Editor's ``coord_str``.

Layout (from github.com/kijai/ComfyUI-KJNodes, ``nodes/curve_nodes.py``, ``SplineEditor.splinedata``):
a JSON string holding, for one spline, a list of points ``[{"x": 12, "y": 34}, ...]`` and, for several
splines, a list of such lists (the node writes the flat list when there is one spline). The points are
the ``points_to_sample`` samples along each drawn spline, in pixels of the editor's
``mask_width`` x ``mask_height`` canvas, which the string does not record. Older versions of the node
wrote Python's ``str()`` of the list (single quotes); that text is read too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.format import TrajectorySet

_COORD_START = re.compile(r"^\s*\[\s*(\[\s*)?\{")


def looks_like_coord_str(text: str) -> bool:
    """True for text that starts like a coord_str: ``[{`` or ``[[{``."""
    return bool(_COORD_START.match(text))


def is_coord_data(data: Any) -> bool:
    """True for decoded JSON shaped like a coord_str: a list of point dicts, or a list of such lists."""
    if not isinstance(data, list) or not data:
        return False
    first = data[0]
    if isinstance(first, list) and first:
        first = first[0]
    return isinstance(first, dict)


def decode_coord_str(text: str) -> Any:
    """JSON-decode a coord_str; Python-style single quotes (older node versions) are accepted."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if "'" not in text or '"' in text:
            raise TrajectoryError(
                f"invalid coord_str JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from None
    try:
        return json.loads(text.replace("'", '"'))
    except json.JSONDecodeError as error:
        raise TrajectoryError(
            f"invalid coord_str JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise TrajectoryError("invalid coord_str JSON: nested too deeply") from None


def _point(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, dict):
        raise TrajectoryError(f'{where} is not an object {{"x": ..., "y": ...}}')
    missing = [key for key in ("x", "y") if key not in raw]
    if missing:
        raise TrajectoryError(f"{where} has no {' and no '.join(repr(key) for key in missing)}")
    return [raw["x"], raw["y"]]


def parse_coord_data(data: Any, image_size: tuple[int, int] | None, kind: str = "object") -> TrajectorySet:
    """Decoded coord_str data -> :class:`TrajectorySet` in the ``image_size`` (canvas) frame."""
    if image_size is None:
        raise TrajectoryError(
            "a KJNodes coord_str is in pixels of the spline editor's canvas (mask_width x mask_height), "
            "which it does not record; pass image_size=(width, height)"
        )
    if not is_coord_data(data):
        raise TrajectoryError(
            'coord_str must be a list of {"x": ..., "y": ...} points or a list of such lists'
        )
    splines = data if isinstance(data[0], list) else [data]
    tracks = []
    for i, spline in enumerate(splines):
        if not isinstance(spline, list):
            raise TrajectoryError(f"track {i} is not a list of points")
        if not spline:
            raise TrajectoryError(f"track {i} has no points")
        tracks.append([_point(raw, f"track {i}, point {j}") for j, raw in enumerate(spline)])
    # TrajectorySet validates the numbers (finite, inside the canvas) and names the track and point.
    return TrajectorySet(tracks, [kind] * len(tracks), [1.0] * len(tracks), image_size)


def parse_coord_str(text: str, image_size: tuple[int, int] | None, kind: str = "object") -> TrajectorySet:
    """A coord_str text -> :class:`TrajectorySet` in the ``image_size`` (canvas) frame."""
    return parse_coord_data(decode_coord_str(text), image_size, kind)


def to_coord_str(trajectories: TrajectorySet) -> str:
    """The coord_str of ``trajectories``: a flat point list for one track, a list of lists for several.

    Coordinates are written as floats (the node itself rounds to whole pixels); kinds, strengths and the
    canvas size are not kept.
    """
    splines = [[{"x": float(x), "y": float(y)} for x, y in track] for track in trajectories.tracks]
    return json.dumps(splines[0] if len(splines) == 1 else splines)
