"""The files a generation writes: the video, optionally its GIF, the side-by-side preview with the
trajectories drawn over the generated frames, and optionally a strip image of frames with the tracks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from imageconductor.overlay import draw_trajectories, side_by_side, trajectory_strip
from imageconductor.trajectories import TrajectorySet, resample_track
from imageconductor.video_io import write_gif, write_mp4

__all__ = ["DEFAULT_STRIP_FRAMES", "output_paths", "write_generation_outputs"]

#: Frames in a strip image unless told otherwise (every frame of a shorter video).
DEFAULT_STRIP_FRAMES = 8


def output_paths(out: Path) -> dict[str, Path]:
    """Files written for the MP4 path ``out``: the MP4, its GIF and the side-by-side MP4 / GIF."""
    base = out.with_suffix("")
    return {
        "mp4": out,
        "gif": base.with_suffix(".gif"),
        "side_by_side": base.parent / f"{base.name}.side_by_side.mp4",
        "side_by_side_gif": base.parent / f"{base.name}.side_by_side.gif",
    }


def write_generation_outputs(
    frames: np.ndarray,
    trajectories: TrajectorySet,
    out: Path,
    *,
    fps: float = 8.0,
    gif: bool = False,
    with_side_by_side: bool = True,
    colors: Sequence[tuple[int, int, int]] | None = None,
    strip: Path | None = None,
    strip_frames: int | None = None,
) -> dict[str, Path]:
    """Write ``frames`` (``(F, H, W, 3)`` uint8) as ``out`` (MP4), optionally a GIF, and the side-by-side
    video (generated | generated with ``trajectories`` drawn in ``colors``, tracks resampled to the frame
    count; ``trajectories`` in the frames' pixels), and, given ``strip``, a PNG there of ``strip_frames``
    evenly spaced frames (default `DEFAULT_STRIP_FRAMES`, at most F) with the tracks drawn as arrows up to
    each frame's time, over a row of the same frames as generated (`overlay.trajectory_strip`).
    Returns the written files by the names of `output_paths` (and ``"strip"``).

    All or nothing: every file is first written under a hidden temporary name beside its own and the
    files are renamed into place only once all of them are written; a failure removes the temporaries
    and leaves no output (and earlier outputs of the same name untouched)."""
    paths = output_paths(out)
    if strip is not None:
        paths["strip"] = strip
    staged: dict[str, Path] = {}

    def stage(name: str) -> Path:
        path = paths[name]
        staged[name] = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
        return staged[name]

    try:
        write_mp4(frames, stage("mp4"), fps=fps)
        if gif:
            write_gif(frames, stage("gif"), fps=fps)
        tracks = [np.asarray(resample_track(track, len(frames))) for track in trajectories.tracks]
        if strip is not None:
            count = strip_frames if strip_frames is not None else min(DEFAULT_STRIP_FRAMES, len(frames))
            image = trajectory_strip(frames, tracks, count, colors=colors)
            Image.fromarray(image).save(stage("strip"), format="PNG")
        if with_side_by_side:
            panel = side_by_side(frames, draw_trajectories(frames, tracks, colors=colors))
            write_mp4(panel, stage("side_by_side"), fps=fps)
            if gif:
                write_gif(panel, stage("side_by_side_gif"), fps=fps)
        for name, temporary in staged.items():
            os.replace(temporary, paths[name])
    finally:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
    return {name: paths[name] for name in staged}
