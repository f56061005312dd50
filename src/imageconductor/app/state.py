"""The drawing state of the app: tracks a person draws on the model frame, and pure functions over it.

A :class:`Drawing` is immutable; every operation returns a new one (the UI keeps one per browser session
in ``gr.State``). Points are ``(x, y)`` pixels of the model frame ``width x height``, the frame the
pipeline samples, so they go to the model unchanged. Operations that cannot be done raise
:class:`DrawingError` with a message meant for the person drawing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imageconductor.overlay import track_colors
from imageconductor.trajectories import (
    MAX_TRACKS,
    TRACK_KINDS,
    TrajectorySet,
    camera_trajectories,
    load_trajectories,
)

__all__ = [
    "Drawing",
    "DrawingError",
    "Track",
    "add_point",
    "add_static_point",
    "apply_camera_preset",
    "clear_tracks",
    "delete_track",
    "drawing_from_trajectories",
    "export_json",
    "load_drawing",
    "new_drawing",
    "select_track",
    "set_kind",
    "start_new_track",
    "to_trajectory_set",
    "undo_point",
]

Point = tuple[float, float]
Color = tuple[int, int, int]

#: Preset grids (columns, rows) from densest to sparsest; the densest that fits the free track slots is used.
PRESET_GRIDS: tuple[tuple[int, int], ...] = ((3, 3), (2, 2), (2, 1))


class DrawingError(ValueError):
    """An operation on the drawing that cannot be done; the message is shown to the person drawing."""


@dataclass(frozen=True)
class Track:
    """One drawn track: its kind (``"object"`` / ``"camera"``), its RGB colour, its points and strength.
    A track of one point is a static point (it holds that spot still)."""

    kind: str
    color: Color
    points: tuple[Point, ...]
    strength: float = 1.0

    @property
    def is_static(self) -> bool:
        """True for a one-point track."""
        return len(self.points) == 1


@dataclass(frozen=True)
class Drawing:
    """All tracks of one session on a ``width x height`` model frame.

    ``current`` is the index of the track that clicks extend; ``None`` means the next click starts a new
    track. ``next_color`` counts the colours handed out, so a track keeps its colour when others go.
    """

    width: int
    height: int
    tracks: tuple[Track, ...] = ()
    current: int | None = None
    max_tracks: int = MAX_TRACKS
    next_color: int = 0

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2:
            raise DrawingError(f"the frame must be at least 2x2 pixels, got {self.width}x{self.height}")
        if self.max_tracks < 1:
            raise DrawingError(f"max_tracks must be at least 1, got {self.max_tracks}")
        if self.current is not None and not 0 <= self.current < len(self.tracks):
            raise DrawingError(f"current track {self.current} does not exist")

    @property
    def free_slots(self) -> int:
        """How many more tracks fit under the track limit."""
        return self.max_tracks - len(self.tracks)


def new_drawing(width: int, height: int, max_tracks: int = MAX_TRACKS) -> Drawing:
    """An empty drawing on a ``width x height`` model frame allowing ``max_tracks`` tracks."""
    return Drawing(width=int(width), height=int(height), max_tracks=int(max_tracks))


def _check_kind(kind: str) -> str:
    if kind not in TRACK_KINDS:
        raise DrawingError(f"a track is {' or '.join(TRACK_KINDS)}, not {kind!r}")
    return kind


def _clamped(drawing: Drawing, x: float, y: float) -> Point:
    """The point moved into the frame (a click on the border may land a fraction outside)."""
    return (min(max(float(x), 0.0), drawing.width - 1.0), min(max(float(y), 0.0), drawing.height - 1.0))


def _color(index: int) -> Color:
    return track_colors(index + 1)[index]


def _limit_message(drawing: Drawing) -> str:
    return (
        f"track limit reached: the model takes at most {drawing.max_tracks} tracks; "
        "delete a track or clear the drawing first"
    )


def _with_new_track(drawing: Drawing, track_points: tuple[Point, ...], kind: str) -> Drawing:
    if drawing.free_slots < 1:
        raise DrawingError(_limit_message(drawing))
    track = Track(_check_kind(kind), _color(drawing.next_color), track_points)
    return dataclasses.replace(
        drawing,
        tracks=(*drawing.tracks, track),
        current=len(drawing.tracks),
        next_color=drawing.next_color + 1,
    )


def _replace_track(drawing: Drawing, index: int, track: Track, **changes: Any) -> Drawing:
    tracks = drawing.tracks[:index] + (track,) + drawing.tracks[index + 1 :]
    return dataclasses.replace(drawing, tracks=tracks, **changes)


def add_point(drawing: Drawing, x: float, y: float, kind: str = "object") -> Drawing:
    """Append ``(x, y)`` to the current track, or start a new track of ``kind`` there if none is current."""
    point = _clamped(drawing, x, y)
    if drawing.current is None:
        return _with_new_track(drawing, (point,), kind)
    track = drawing.tracks[drawing.current]
    return _replace_track(drawing, drawing.current, dataclasses.replace(track, points=(*track.points, point)))


def add_static_point(drawing: Drawing, x: float, y: float, kind: str = "object") -> Drawing:
    """Add a one-point track of ``kind`` at ``(x, y)`` (it holds that spot); the next click starts anew."""
    return dataclasses.replace(_with_new_track(drawing, (_clamped(drawing, x, y),), kind), current=None)


def start_new_track(drawing: Drawing) -> Drawing:
    """Finish the current track: the next click starts a new one."""
    if drawing.current is None:
        return drawing
    if drawing.free_slots < 1:
        raise DrawingError(_limit_message(drawing))
    return dataclasses.replace(drawing, current=None)


def select_track(drawing: Drawing, index: int) -> Drawing:
    """Make track ``index`` (from 0) the one clicks extend."""
    if not 0 <= index < len(drawing.tracks):
        raise DrawingError(f"there is no track {index + 1}")
    return dataclasses.replace(drawing, current=index)


def set_kind(drawing: Drawing, index: int, kind: str) -> Drawing:
    """Change the kind of track ``index`` to ``kind`` (``"object"`` or ``"camera"``)."""
    if not 0 <= index < len(drawing.tracks):
        raise DrawingError(f"there is no track {index + 1}")
    return _replace_track(drawing, index, dataclasses.replace(drawing.tracks[index], kind=_check_kind(kind)))


def undo_point(drawing: Drawing) -> Drawing:
    """Remove the last point of the current track (else of the last track); a track left empty goes.

    The track stays current, so the next click continues it.
    """
    if not drawing.tracks:
        raise DrawingError("nothing to undo: the drawing is empty")
    index = drawing.current if drawing.current is not None else len(drawing.tracks) - 1
    track = drawing.tracks[index]
    if len(track.points) == 1:
        return delete_track(drawing, index)
    return _replace_track(drawing, index, dataclasses.replace(track, points=track.points[:-1]), current=index)


def delete_track(drawing: Drawing, index: int) -> Drawing:
    """Remove track ``index``; the others keep their colours. No track is current afterwards unless a later
    one was (it keeps being current under its new index)."""
    if not 0 <= index < len(drawing.tracks):
        raise DrawingError(f"there is no track {index + 1}")
    tracks = drawing.tracks[:index] + drawing.tracks[index + 1 :]
    current = drawing.current
    if current == index:
        current = None
    elif current is not None and current > index:
        current -= 1
    return dataclasses.replace(drawing, tracks=tracks, current=current)


def clear_tracks(drawing: Drawing) -> Drawing:
    """Remove every track (the frame size and track limit stay)."""
    return new_drawing(drawing.width, drawing.height, drawing.max_tracks)


def _append_set(drawing: Drawing, trajectories: TrajectorySet) -> Drawing:
    """``drawing`` with every track of ``trajectories`` (already in its frame) appended, none current."""
    tracks = list(drawing.tracks)
    next_color = drawing.next_color
    for points, kind, strength in zip(
        trajectories.tracks, trajectories.kinds, trajectories.strengths, strict=True
    ):
        tracks.append(Track(kind, _color(next_color), tuple(map(tuple, points.tolist())), float(strength)))
        next_color += 1
    return dataclasses.replace(drawing, tracks=tuple(tracks), current=None, next_color=next_color)


def apply_camera_preset(drawing: Drawing, name: str, num_frames: int) -> Drawing:
    """Replace the camera tracks with the preset ``name`` (e.g. ``"pan_left"``, ``"zoom_in+pan_up"``) over
    ``num_frames`` frames; object tracks stay. The preset's point grid is the densest of
    :data:`PRESET_GRIDS` that fits the free track slots."""
    kept = [index for index, track in enumerate(drawing.tracks) if track.kind != "camera"]
    base = drawing
    for index in reversed(range(len(drawing.tracks))):
        if index not in kept:
            base = delete_track(base, index)
    for grid in PRESET_GRIDS:
        try:
            preset = camera_trajectories(name, num_frames, drawing.height, drawing.width, grid=grid)
        except ValueError as exc:
            raise DrawingError(str(exc)) from None
        if len(preset) <= base.free_slots:
            return _append_set(base, preset)
    raise DrawingError(
        f"no room for the camera preset: {len(kept)} object tracks leave {base.free_slots} of "
        f"{drawing.max_tracks} track slots; a preset needs at least 2"
    )


def to_trajectory_set(drawing: Drawing) -> TrajectorySet:
    """The tracks as a validated :class:`TrajectorySet` in the model frame; DrawingError when empty."""
    if not drawing.tracks:
        raise DrawingError("no tracks: click on the image to draw at least one track")
    return TrajectorySet(
        [list(track.points) for track in drawing.tracks],
        [track.kind for track in drawing.tracks],
        [track.strength for track in drawing.tracks],
        (drawing.width, drawing.height),
    )


def export_json(drawing: Drawing, official: bool = False) -> str:
    """The tracks as the project's JSON (``official=False``) or the official list of tracks."""
    return to_trajectory_set(drawing).to_json(official=official)


def drawing_from_trajectories(
    trajectories: TrajectorySet, width: int, height: int, max_tracks: int
) -> Drawing:
    """A drawing holding ``trajectories`` rescaled to a ``width x height`` frame (kinds and strengths kept)."""
    if len(trajectories) > max_tracks:
        raise DrawingError(f"{len(trajectories)} tracks given; the model takes at most {max_tracks}")
    return _append_set(new_drawing(width, height, max_tracks), trajectories.rescaled(width, height))


def load_drawing(text: str, width: int, height: int, max_tracks: int = MAX_TRACKS) -> Drawing:
    """A drawing from JSON text in any trajectory format the CLI reads.

    An official list holds pixels of the ``width x height`` model frame; a rich file states its own
    ``image_size`` and is rescaled. Only JSON text is taken (never a path: the text may come from anyone).
    Any problem with the input raises DrawingError naming it.
    """
    if not isinstance(text, str) or text.lstrip()[:1] not in ("[", "{"):
        raise DrawingError(
            'trajectories must be JSON text: a list of tracks or an object with a "tracks" list'
        )
    try:
        trajectories = load_trajectories(
            text, image_size=(width, height), target_size=(width, height), max_tracks=max_tracks
        )
    except ValueError as exc:
        raise DrawingError(f"bad trajectories: {exc}") from None
    return drawing_from_trajectories(trajectories, width, height, max_tracks)
