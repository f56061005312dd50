"""Which trajectory file formats exist, how a file's format is recognised, and the foreign readers/writers.

``load_trajectories`` and ``save_trajectories`` (in ``format.py``) dispatch through here, so every command
that reads trajectories reads all of these formats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageconductor.trajectories.errors import TrajectoryError


@dataclass(frozen=True)
class TrajectoryFormat:
    """One file format: its name (the ``format=`` value), what it is, and what survives a round trip."""

    name: str
    description: str
    suffix: str
    #: the file states the frame its points refer to (otherwise ``image_size`` must be given or defaults)
    records_frame: bool
    #: kinds and strengths are kept
    keeps_kinds: bool


TRAJECTORY_FORMATS: dict[str, TrajectoryFormat] = {
    "rich": TrajectoryFormat(
        "rich", "imageconductor JSON (version 1): frame size, kinds, strengths", ".json", True, True
    ),
    "official": TrajectoryFormat(
        "official", "released Image Conductor JSON: a list of tracks of [x, y] points", ".json", False, False
    ),
    "wanmove": TrajectoryFormat(
        "wanmove",
        "Wan-Move tracks.npy (1, F, N, 2) float32 + visibility.npy (1, F, N) bool",
        ".npy",
        False,
        False,
    ),
    "kjnodes": TrajectoryFormat(
        "kjnodes",
        'ComfyUI KJNodes Spline Editor coord_str: [{"x": .., "y": ..}, ...] per spline',
        ".json",
        False,
        False,
    ),
}
"""Every format ``load_trajectories`` reads and ``save_trajectories`` writes, by name."""


def check_format_name(name: str | None) -> str | None:
    """Return ``name`` if it is a known format (or None), else raise :class:`TrajectoryError`."""
    if name is not None and name not in TRAJECTORY_FORMATS:
        raise TrajectoryError(f"unknown trajectory format {name!r}; known: {', '.join(TRAJECTORY_FORMATS)}")
    return name


def is_npy_path(source: Any) -> bool:
    """True for a path (str or PathLike, not JSON text) whose name ends in ``.npy``."""
    if isinstance(source, os.PathLike):
        return Path(source).suffix.lower() == ".npy"
    return (
        isinstance(source, str) and source.lstrip()[:1] not in ("[", "{") and source.lower().endswith(".npy")
    )


def read_wanmove(source: Any, image_size: tuple[int, int] | None, kind: str):
    """A Wan-Move tracks file (and its visibility sibling) as a TrajectorySet."""
    from imageconductor.trajectories.formats_wanmove import load_wanmove

    if not isinstance(source, (str, os.PathLike)):
        raise TrajectoryError("the wanmove format is read from a tracks.npy path")
    return load_wanmove(source, image_size=image_size, kind=kind)


def write_foreign(trajectories, path: Path, name: str, num_frames: int | None) -> Path:
    """Write ``trajectories`` in the foreign format ``name`` (``wanmove`` or ``kjnodes``)."""
    if name == "wanmove":
        from imageconductor.trajectories.formats_wanmove import save_wanmove

        return save_wanmove(trajectories, path, num_frames=num_frames)
    from imageconductor.trajectories.formats_kjnodes import to_coord_str

    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(to_coord_str(trajectories), encoding="utf-8")
    os.replace(temporary, path)
    return path
