"""Trajectory files: the official list-of-tracks JSON, the richer versioned format, and validation.

Two JSON layouts are read (see ``docs/trajectories.md``):

* official: ``[[[x, y], [x, y], ...], ...]`` — a list of tracks of pixel points in the model frame
  (384×256 unless told otherwise);
* rich: ``{"version": 1, "image_size": [w, h], "tracks": [{"points": [[x, y], ...],
  "kind": "object" | "camera", "strength": 1.0}, ...]}``.

Everything that is wrong with the input raises :class:`TrajectoryError` naming the track and point.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imageconductor.files import AtomicFile
from imageconductor.trajectories.errors import TrajectoryError

DEFAULT_IMAGE_SIZE: tuple[int, int] = (384, 256)
"""(width, height) of the model frame the official tracks refer to."""
MAX_TRACKS = 8
"""Default upper limit on the number of tracks (the paper samples at most 8)."""
FORMAT_VERSION = 1
TRACK_KINDS = ("object", "camera")

_TOP_LEVEL_KEYS = ("version", "image_size", "tracks", "kind", "description")
_TRACK_KEYS = ("points", "kind", "strength", "name")


def _describe(value: Any) -> str:
    """Name a value's JSON type without printing containers (they may be huge or deeply nested)."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return f"a boolean ({bool(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _as_number(value: Any, where: str, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TrajectoryError(f"{where}: {name} is {_describe(value)}; expected a number")
    try:
        number = float(value)
    except OverflowError:
        raise TrajectoryError(f"{where}: {name} is too large to be a coordinate") from None
    if not math.isfinite(number):
        raise TrajectoryError(f"{where}: {name} is {number}; expected a finite number")
    return number


def _parse_point(raw: Any, where: str) -> tuple[float, float]:
    if isinstance(raw, np.ndarray):
        raw = raw.tolist() if raw.ndim == 1 else raw
    if not isinstance(raw, (list, tuple)):
        hint = " (is the track nested one level too shallow?)" if isinstance(raw, (int, float)) else ""
        raise TrajectoryError(f"{where} is {_describe(raw)}; expected a point [x, y]{hint}")
    if len(raw) != 2:
        count = f"{len(raw)} value" + ("" if len(raw) == 1 else "s")
        raise TrajectoryError(f"{where} has {count}; expected exactly two, [x, y]")
    return _as_number(raw[0], where, "x"), _as_number(raw[1], where, "y")


def _parse_track_points(raw: Any, track_index: int) -> np.ndarray:
    """One track as a (N, 2) float64 array, N >= 1, all values finite."""
    where = f"track {track_index}"
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "iuf":
            raise TrajectoryError(f"{where}: array of dtype {raw.dtype}; expected numbers")
        if raw.ndim != 2 or raw.shape[1] != 2:
            raise TrajectoryError(f"{where}: array of shape {raw.shape}; expected (num_points, 2)")
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise TrajectoryError(f"{where} is {_describe(raw)}; expected a list of [x, y] points")
    if len(raw) == 0:
        raise TrajectoryError(f"{where} has no points")
    points = [_parse_point(point, f"{where}, point {j}") for j, point in enumerate(raw)]
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _parse_image_size(raw: Any, where: str = "image_size") -> tuple[int, int]:
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        raise TrajectoryError(f"{where} is {_describe(raw)}; expected [width, height]")
    size = []
    for name, value in zip(("width", "height"), raw, strict=True):
        number = _as_number(value, where, name)
        if number != int(number) or number < 1:
            raise TrajectoryError(f"{where}: {name} is {number}; expected a positive whole number")
        size.append(int(number))
    return size[0], size[1]


def _parse_kind(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or raw not in TRACK_KINDS:
        shown = repr(raw) if isinstance(raw, str) and len(raw) <= 20 else _describe(raw)
        raise TrajectoryError(f"{where}: kind is {shown}; expected one of {', '.join(TRACK_KINDS)}")
    return raw


def _parse_strength(raw: Any, where: str) -> float:
    strength = _as_number(raw, where, "strength")
    if strength < 0:
        raise TrajectoryError(f"{where}: strength is {strength}; expected a number >= 0")
    return strength


def _check_inside(tracks: Sequence[np.ndarray], image_size: tuple[int, int]) -> None:
    """Every point must lie in the closed rectangle [0, width] x [0, height]."""
    width, height = image_size
    for i, track in enumerate(tracks):
        outside = (track[:, 0] < 0) | (track[:, 0] > width) | (track[:, 1] < 0) | (track[:, 1] > height)
        if outside.any():
            j = int(np.flatnonzero(outside)[0])
            x, y = track[j]
            raise TrajectoryError(
                f"track {i}, point {j}: ({x:g}, {y:g}) is outside the {width}x{height} image "
                f"(expected 0 <= x <= {width} and 0 <= y <= {height})"
            )


@dataclass(eq=False)
class TrajectorySet:
    """Validated tracks plus what they mean.

    Attributes:
        tracks: one ``(N_i, 2)`` float64 array of ``(x, y)`` pixels per track, in the frame ``image_size``.
        kinds: ``"object"`` or ``"camera"`` per track.
        strengths: per-track factor on the displacements (1.0 = as drawn).
        image_size: ``(width, height)`` of the frame the points refer to.
    """

    tracks: list[np.ndarray]
    kinds: list[str] = field(default_factory=list)
    strengths: list[float] = field(default_factory=list)
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.tracks, np.ndarray) and self.tracks.ndim == 3:
            self.tracks = list(self.tracks)
        if not isinstance(self.tracks, (list, tuple)) or len(self.tracks) == 0:
            raise TrajectoryError("a trajectory set needs at least one track")
        self.tracks = [_parse_track_points(track, i) for i, track in enumerate(self.tracks)]
        count = len(self.tracks)
        kinds = (
            [self.kinds] * count if isinstance(self.kinds, str) else list(self.kinds) or ["object"] * count
        )
        if isinstance(self.strengths, (int, float)) and not isinstance(self.strengths, bool):
            strengths = [self.strengths] * count
        else:
            strengths = list(self.strengths) or [1.0] * count
        if len(kinds) != count or len(strengths) != count:
            raise TrajectoryError(
                f"{count} tracks but {len(kinds)} kinds and {len(strengths)} strengths; expected one each"
            )
        self.kinds = [_parse_kind(kind, f"track {i}") for i, kind in enumerate(kinds)]
        self.strengths = [_parse_strength(s, f"track {i}") for i, s in enumerate(strengths)]
        self.image_size = _parse_image_size(self.image_size)
        _check_inside(self.tracks, self.image_size)

    def __len__(self) -> int:
        return len(self.tracks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrajectorySet):
            return NotImplemented
        return (
            self.image_size == other.image_size
            and self.kinds == other.kinds
            and self.strengths == other.strengths
            and len(self.tracks) == len(other.tracks)
            and all(np.array_equal(a, b) for a, b in zip(self.tracks, other.tracks, strict=True))
        )

    @property
    def kind(self) -> str:
        """``"object"`` or ``"camera"`` when all tracks agree, otherwise ``"mixed"``."""
        kinds = set(self.kinds)
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def rescaled(self, width: int, height: int) -> TrajectorySet:
        """The same tracks in a ``width`` x ``height`` frame (x scaled by width ratio, y by height ratio)."""
        new_size = _parse_image_size((width, height), "target size")
        if new_size == self.image_size:
            tracks = [track.copy() for track in self.tracks]
        else:
            scale = np.array([new_size[0] / self.image_size[0], new_size[1] / self.image_size[1]])
            tracks = [track * scale for track in self.tracks]
        return TrajectorySet(tracks, list(self.kinds), list(self.strengths), new_size)

    def of_kind(self, kind: str) -> TrajectorySet:
        """The subset of tracks of one kind."""
        kind = _parse_kind(kind, "of_kind")
        keep = [i for i, k in enumerate(self.kinds) if k == kind]
        if not keep:
            raise TrajectoryError(f"no tracks of kind {kind!r} (kinds present: {sorted(set(self.kinds))})")
        return TrajectorySet(
            [self.tracks[i] for i in keep],
            [kind] * len(keep),
            [self.strengths[i] for i in keep],
            self.image_size,
        )

    def to_official(self) -> list[list[list[float]]]:
        """The official layout (list of tracks of ``[x, y]``); kinds, strengths and image size are dropped."""
        return [track.tolist() for track in self.tracks]

    def to_dict(self) -> dict[str, Any]:
        """The rich layout as plain JSON-ready Python objects."""
        return {
            "version": FORMAT_VERSION,
            "image_size": list(self.image_size),
            "tracks": [
                {"kind": kind, "strength": strength, "points": track.tolist()}
                for track, kind, strength in zip(self.tracks, self.kinds, self.strengths, strict=True)
            ],
        }

    def to_json(self, official: bool = False) -> str:
        """JSON text: the rich layout with one track per line, or the official one-line list."""
        if official:
            return json.dumps(self.to_official())
        data = self.to_dict()
        track_lines = ",\n".join("    " + json.dumps(track) for track in data["tracks"])
        return (
            "{\n"
            f'  "version": {data["version"]},\n'
            f'  "image_size": {json.dumps(data["image_size"])},\n'
            f'  "tracks": [\n{track_lines}\n  ]\n'
            "}\n"
        )


def _check_keys(raw: dict, allowed: Iterable[str], where: str) -> None:
    unknown = [key for key in raw if key not in allowed]
    if unknown:
        names = ", ".join(sorted(repr(key) if isinstance(key, str) else _describe(key) for key in unknown))
        raise TrajectoryError(f"{where}: unknown key(s) {names}; allowed: {', '.join(allowed)}")


def _parse_rich(raw: dict, default_kind: str) -> TrajectorySet:
    _check_keys(raw, _TOP_LEVEL_KEYS, "trajectory file")
    version = raw.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise TrajectoryError(f"version is {_describe(version)}; expected the integer {FORMAT_VERSION}")
    if version != FORMAT_VERSION:
        raise TrajectoryError(f"unsupported version {version}; this reader knows version {FORMAT_VERSION}")
    image_size = _parse_image_size(raw.get("image_size", DEFAULT_IMAGE_SIZE))
    if "description" in raw and not isinstance(raw["description"], str):
        raise TrajectoryError(f"description is {_describe(raw['description'])}; expected a string")
    default_kind = _parse_kind(raw.get("kind", default_kind), "trajectory file")
    if "tracks" not in raw:
        raise TrajectoryError('trajectory file has no "tracks" list')
    raw_tracks = raw["tracks"]
    if not isinstance(raw_tracks, (list, tuple)):
        raise TrajectoryError(f"tracks is {_describe(raw_tracks)}; expected a list")
    tracks, kinds, strengths = [], [], []
    for i, raw_track in enumerate(raw_tracks):
        where = f"track {i}"
        if isinstance(raw_track, dict):
            _check_keys(raw_track, _TRACK_KEYS, where)
            if "points" not in raw_track:
                raise TrajectoryError(f'{where} has no "points"')
            if "name" in raw_track and not isinstance(raw_track["name"], str):
                raise TrajectoryError(f"{where}: name is {_describe(raw_track['name'])}; expected a string")
            tracks.append(_parse_track_points(raw_track["points"], i))
            kinds.append(_parse_kind(raw_track.get("kind", default_kind), where))
            strengths.append(_parse_strength(raw_track.get("strength", 1.0), where))
        else:
            tracks.append(_parse_track_points(raw_track, i))
            kinds.append(default_kind)
            strengths.append(1.0)
    if not tracks:
        raise TrajectoryError("no tracks: the tracks list is empty")
    return TrajectorySet(tracks, kinds, strengths, image_size)


def _parse_official(raw: list | tuple | np.ndarray, image_size: tuple[int, int], kind: str) -> TrajectorySet:
    if isinstance(raw, np.ndarray):
        if raw.ndim != 3:
            raise TrajectoryError(f"array of shape {raw.shape}; expected (num_tracks, num_points, 2)")
        raw = list(raw)
    if len(raw) == 0:
        raise TrajectoryError("no tracks: the list is empty")
    first = raw[0]
    if (
        isinstance(first, (list, tuple))
        and len(first) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first)
    ):
        raise TrajectoryError(
            "track 0 is a single point [x, y], not a list of points; the file must be a list of tracks "
            "(wrap a single track in another list: [[[x, y], ...]])"
        )
    tracks = [_parse_track_points(track, i) for i, track in enumerate(raw)]
    return TrajectorySet(tracks, [kind] * len(tracks), [1.0] * len(tracks), image_size)


def parse_trajectories(
    data: Any,
    *,
    image_size: tuple[int, int] | None = None,
    default_kind: str = "object",
    max_tracks: int | None = MAX_TRACKS,
) -> TrajectorySet:
    """Validate already-decoded JSON data (official list or rich dict) into a :class:`TrajectorySet`.

    Args:
        data: a list of tracks (official layout), a rich-format dict, a ``(K, N, 2)`` array or a
            :class:`TrajectorySet`.
        image_size: ``(width, height)`` the points of an official-layout list refer to
            (default 384x256); a rich file states its own.
        default_kind: kind of tracks that do not state one.
        max_tracks: largest allowed number of tracks (``None``: no limit).
    """
    default_kind = _parse_kind(default_kind, "default_kind")
    if isinstance(data, TrajectorySet):
        trajectories = data
    elif isinstance(data, dict):
        trajectories = _parse_rich(data, default_kind)
    elif isinstance(data, (list, tuple, np.ndarray)):
        size = DEFAULT_IMAGE_SIZE if image_size is None else _parse_image_size(image_size)
        trajectories = _parse_official(data, size, default_kind)
    else:
        raise TrajectoryError(
            f'trajectories are {_describe(data)}; expected a list of tracks or an object with a "tracks" list'
        )
    _check_track_count(trajectories, max_tracks)
    return trajectories


def _check_track_count(trajectories: TrajectorySet, max_tracks: int | None) -> None:
    if max_tracks is not None and len(trajectories) > max_tracks:
        raise TrajectoryError(
            f"{len(trajectories)} tracks given; at most {max_tracks} are allowed (pass max_tracks to change)"
        )


def _read_text(source: str | bytes | os.PathLike) -> tuple[str, str]:
    """Return (text, where) for JSON text, bytes or a file path."""
    if isinstance(source, bytes):
        try:
            return source.decode("utf-8"), "JSON bytes"
        except UnicodeDecodeError as error:
            raise TrajectoryError(f"trajectory bytes are not UTF-8 text: {error}") from None
    if isinstance(source, str) and source.lstrip()[:1] in ("[", "{"):
        return source, "JSON text"
    if isinstance(source, str) and not source.strip():
        raise TrajectoryError("empty trajectory source: expected a path or JSON text")
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise TrajectoryError(f"trajectory file not found: {path}") from None
    except (OSError, ValueError) as error:  # ValueError: undecodable bytes or a NUL in the path
        raise TrajectoryError(f"cannot read trajectory file {path}: {error}") from None


def load_trajectories(
    source: Any,
    *,
    image_size: tuple[int, int] | None = None,
    target_size: tuple[int, int] | None = None,
    default_kind: str = "object",
    max_tracks: int | None = MAX_TRACKS,
    format: str | None = None,
) -> TrajectorySet:
    """Read and validate trajectories from a path, JSON text/bytes, decoded JSON data or a TrajectorySet.

    Args:
        source: file path, JSON text (starting with ``[`` or ``{``), bytes, list, dict or TrajectorySet.
        image_size: ``(width, height)`` the points refer to when the file does not say (official list:
            default 384x256; Wan-Move and KJNodes files: required).
        target_size: if given, ``(width, height)`` to rescale the result to.
        default_kind: kind of tracks that do not state one (the official layout states none).
        max_tracks: largest allowed number of tracks (``None``: no limit).
        format: one of ``TRAJECTORY_FORMATS`` (``rich``, ``official``, ``wanmove``, ``kjnodes``); None
            recognises it: a ``.npy`` path is Wan-Move, a list of ``{"x", "y"}`` objects is KJNodes,
            an object is rich, a list of point lists is official.

    Raises:
        TrajectoryError: for anything wrong with the input, naming the track and point at fault.
    """
    from imageconductor.trajectories import file_formats
    from imageconductor.trajectories.formats_kjnodes import (
        decode_coord_str,
        is_coord_data,
        looks_like_coord_str,
        parse_coord_data,
    )

    file_formats.check_format_name(format)
    default_kind = _parse_kind(default_kind, "default_kind")
    if format == "wanmove" or (format is None and file_formats.is_npy_path(source)):
        trajectories = file_formats.read_wanmove(source, image_size, default_kind)
        _check_track_count(trajectories, max_tracks)
        return trajectories if target_size is None else trajectories.rescaled(*target_size)
    data = source
    if isinstance(source, (str, bytes, os.PathLike)):
        text, where = _read_text(source)
        if format == "kjnodes" or (format is None and looks_like_coord_str(text)):
            data = decode_coord_str(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise TrajectoryError(
                    f"invalid JSON in {where}: {error.msg} at line {error.lineno} column {error.colno}"
                ) from None
            except RecursionError:
                raise TrajectoryError(f"invalid JSON in {where}: nested too deeply") from None
    if format == "kjnodes" or (format is None and is_coord_data(data)):
        trajectories = parse_coord_data(data, image_size, default_kind)
        _check_track_count(trajectories, max_tracks)
    else:
        if format == "rich" and not isinstance(data, dict):
            raise TrajectoryError(
                f'a rich trajectory file is an object with a "tracks" list, not {_describe(data)}'
            )
        if format == "official" and not isinstance(data, (list, tuple, np.ndarray)):
            raise TrajectoryError(f"an official trajectory file is a list of tracks, not {_describe(data)}")
        trajectories = parse_trajectories(
            data, image_size=image_size, default_kind=default_kind, max_tracks=max_tracks
        )
    if target_size is not None:
        trajectories = trajectories.rescaled(*target_size)
    return trajectories


def save_trajectories(
    trajectories: Any,
    path: str | os.PathLike,
    *,
    official: bool = False,
    format: str | None = None,
    num_frames: int | None = None,
) -> Path:
    """Write trajectories in one of ``TRAJECTORY_FORMATS``; returns the path written.

    ``format`` None means ``wanmove`` for a ``.npy`` path, else ``official`` with ``official=True``, else
    ``rich``. ``num_frames`` applies to ``wanmove`` (tracks resampled to that many frames; see
    ``formats_wanmove.wanmove_arrays``). Files are written to a temporary name first and then renamed,
    so a failure never leaves half a file; they get the permissions of the user's umask.
    """
    from imageconductor.trajectories import file_formats

    file_formats.check_format_name(format)
    if not isinstance(trajectories, TrajectorySet):
        trajectories = parse_trajectories(trajectories, max_tracks=None)
    path = Path(path)
    if format is None:
        format = "wanmove" if path.suffix.lower() == ".npy" else "official" if official else "rich"
    elif official and format != "official":
        raise TrajectoryError(f"official=True contradicts format={format!r}")
    if format in ("wanmove", "kjnodes"):
        return file_formats.write_foreign(trajectories, path, format, num_frames)
    target = AtomicFile(path)
    try:
        target.temp.write_text(trajectories.to_json(official=format == "official"), encoding="utf-8")
        target.commit()
    finally:
        target.discard()
    return path
