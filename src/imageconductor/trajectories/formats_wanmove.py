"""Wan-Move's trajectory files: ``tracks.npy`` plus ``visibility.npy``.

Layout (from the Wan-Move repository, github.com/ali-vilab/Wan-Move: ``wan/wan_move.py`` documents
``track`` as ``[b, F, track_num, 2]`` and ``track_visibility`` as ``[b, F, track_num]``; its Gradio app
saves ``tracks.npy`` of shape ``(1, F, N, 2)`` float32 and ``visibility.npy`` of shape ``(1, F, N)``, and
accepts ``(F, N, 2)`` / ``(F, N)`` too; the bundled example is ``(1, 81, 1, 2)`` float32 and
``(1, 81, 1)`` bool): pixel ``(x, y)`` positions per frame and per track in the frame of the input
image, whose size the files do not record.

Reading: invisible positions are replaced by linear interpolation between the nearest visible ones of
the same track (held constant before the first and after the last visible frame); a visible point
outside the image counts as invisible; a track with no visible frame is dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.format import TrajectorySet
from imageconductor.trajectories.resample import resample_track

WANMOVE_FRAMES = 81
"""Frames of a Wan-Move clip (its default ``frame_num``)."""


def visibility_path_for(tracks_path: str | os.PathLike) -> Path:
    """The visibility file beside a tracks file: the last ``tracks`` in the name becomes ``visibility``.

    ``tracks.npy`` -> ``visibility.npy``, ``clip_tracks.npy`` -> ``clip_visibility.npy``; a name without
    ``tracks`` gets ``_visibility`` appended to its stem (``a.npy`` -> ``a_visibility.npy``).
    """
    path = Path(tracks_path)
    stem = path.stem
    at = stem.rfind("tracks")
    name = stem[:at] + "visibility" + stem[at + len("tracks") :] if at >= 0 else stem + "_visibility"
    return path.with_name(name + path.suffix)


def _load_array(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TrajectoryError(f"{what} file not found: {path}") from None
    except (OSError, ValueError, EOFError) as error:  # pickled objects, truncated or foreign files
        raise TrajectoryError(f"cannot read {what} file {path} as a numpy array: {error}") from None


def check_wanmove_arrays(tracks: np.ndarray, visibility: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate Wan-Move arrays; return tracks ``(F, N, 2)`` float64 and visibility ``(F, N)`` bool.

    A leading batch axis of size 1 is removed. Visible positions must be finite; invisible ones may be NaN.
    """
    tracks = np.asarray(tracks)
    if tracks.dtype.kind not in "iuf":
        raise TrajectoryError(f"tracks array has dtype {tracks.dtype}; expected numbers")
    if tracks.ndim == 4:
        if tracks.shape[0] != 1:
            raise TrajectoryError(
                f"tracks array of shape {tracks.shape} holds {tracks.shape[0]} clips; expected 1"
            )
        tracks = tracks[0]
    if tracks.ndim != 3 or tracks.shape[2] != 2:
        raise TrajectoryError(f"tracks array of shape {tracks.shape}; expected (1, F, N, 2) or (F, N, 2)")
    frames, count = tracks.shape[:2]
    if frames == 0 or count == 0:
        raise TrajectoryError(f"tracks array of shape {tracks.shape} holds no points")
    if visibility is None:
        visibility = np.ones((frames, count), dtype=bool)
    visibility = np.asarray(visibility)
    if visibility.ndim == 3 and visibility.shape[0] == 1:
        visibility = visibility[0]
    if visibility.shape != (frames, count):
        raise TrajectoryError(
            f"visibility array of shape {visibility.shape} does not match tracks of {frames} frames and "
            f"{count} tracks; expected (1, {frames}, {count}) or ({frames}, {count})"
        )
    if visibility.dtype.kind not in "biuf":
        raise TrajectoryError(f"visibility array has dtype {visibility.dtype}; expected booleans or 0/1")
    if visibility.dtype.kind != "b" and not np.isin(visibility, (0, 1)).all():
        raise TrajectoryError("visibility array holds values other than 0 and 1")
    visibility = visibility.astype(bool)
    tracks = tracks.astype(np.float64)
    bad = visibility & ~np.isfinite(tracks).all(axis=2)
    if bad.any():
        frame, track = (int(v) for v in np.argwhere(bad)[0])
        raise TrajectoryError(
            f"track {track}, frame {frame}: position {tracks[frame, track].tolist()} is not finite but "
            "marked visible"
        )
    return tracks, visibility


def fill_invisible(track: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``(F, 2)`` positions with invisible frames interpolated linearly between visible ones (ends held)."""
    frames = np.arange(len(track))
    known = np.flatnonzero(visible)
    if len(known) == 0:
        raise TrajectoryError("a track with no visible frame cannot be filled")
    return np.stack([np.interp(frames, known, track[known, axis]) for axis in range(2)], axis=1)


def wanmove_to_set(
    tracks: np.ndarray,
    visibility: np.ndarray | None,
    image_size: tuple[int, int] | None,
    kind: str = "object",
) -> TrajectorySet:
    """Wan-Move arrays -> :class:`TrajectorySet` in the ``image_size`` frame (see the module notes)."""
    if image_size is None:
        raise TrajectoryError(
            "Wan-Move tracks are pixels of the input image, whose size the file does not record; "
            "pass image_size=(width, height)"
        )
    tracks, visibility = check_wanmove_arrays(tracks, visibility)
    width, height = image_size
    x, y = tracks[..., 0], tracks[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    visibility = visibility & inside
    kept = [n for n in range(tracks.shape[1]) if visibility[:, n].any()]
    if not kept:
        raise TrajectoryError(f"no track is visible inside the {width}x{height} image in any frame")
    filled = [fill_invisible(tracks[:, n], visibility[:, n]) for n in kept]
    return TrajectorySet(filled, [kind] * len(kept), [1.0] * len(kept), image_size)


def load_wanmove(
    path: str | os.PathLike,
    *,
    visibility_path: str | os.PathLike | None = None,
    image_size: tuple[int, int] | None = None,
    kind: str = "object",
) -> TrajectorySet:
    """Read a Wan-Move ``tracks.npy`` and its visibility file (default: :func:`visibility_path_for`).

    A missing visibility file (when not named explicitly) means every point is visible.
    """
    path = Path(path)
    tracks = _load_array(path, "tracks")
    if visibility_path is None:
        sibling = visibility_path_for(path)
        visibility = _load_array(sibling, "visibility") if sibling.is_file() else None
    else:
        visibility = _load_array(Path(visibility_path), "visibility")
    return wanmove_to_set(tracks, visibility, image_size, kind)


def wanmove_arrays(
    trajectories: TrajectorySet, num_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tracks ``(1, F, N, 2)`` float32 and visibility ``(1, F, N)`` bool, as Wan-Move saves them.

    Tracks are written as they are when they all have ``F`` points and ``num_frames`` is None or ``F``;
    otherwise each is resampled to ``num_frames`` points (default: the longest track's length) with the
    official PCHIP rule of :func:`resample_track`. Every point is visible.
    """
    lengths = {len(track) for track in trajectories.tracks}
    target = num_frames if num_frames is not None else max(lengths)
    if target < 2 and lengths != {1}:
        raise TrajectoryError(f"num_frames must be >= 2 to resample tracks, got {target}")
    if lengths == {target}:
        stacked = np.stack(trajectories.tracks, axis=1)
    else:
        stacked = np.stack([resample_track(track, target) for track in trajectories.tracks], axis=1)
    tracks = stacked[None].astype(np.float32)
    return tracks, np.ones(tracks.shape[:3], dtype=bool)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".tmp.npy")
    try:
        np.save(temporary, array, allow_pickle=False)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_wanmove(
    trajectories: TrajectorySet,
    path: str | os.PathLike,
    *,
    num_frames: int | None = None,
    visibility_path: str | os.PathLike | None = None,
) -> Path:
    """Write ``tracks.npy`` and its visibility file (default :func:`visibility_path_for`); returns the tracks path.

    Kinds, strengths and the image size are not kept: the format has no place for them.
    """
    path = Path(path)
    if path.suffix != ".npy":
        raise TrajectoryError(f"a Wan-Move tracks file must end in .npy, got {path.name}")
    tracks, visibility = wanmove_arrays(trajectories, num_frames)
    _atomic_save(path, tracks)
    _atomic_save(
        Path(visibility_path) if visibility_path is not None else visibility_path_for(path), visibility
    )
    return path
