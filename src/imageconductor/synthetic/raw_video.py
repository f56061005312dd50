"""Long "raw" videos: several synthetic scenes joined by hard cuts, with the cut frames recorded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imageconductor.synthetic.random_spec import random_clip_spec
from imageconductor.synthetic.spec import ClipSpec
from imageconductor.synthetic.textures import random_scene_style
from imageconductor.synthetic.world import SyntheticClip, render_clip
from imageconductor.video_io import Mp4Writer

__all__ = ["RawVideoInfo", "raw_video_specs", "render_raw_video", "write_raw_video"]

_MIN_HUE_STEP = 80.0  # degrees between the main hues of consecutive scenes


@dataclass
class RawVideoInfo:
    """Where the cuts of a raw video are: ``cut_frames[i]`` is the first frame of scene ``i + 1``;
    ``scenes`` holds (start, end) frame ranges, end exclusive."""

    cut_frames: list[int]
    scenes: list[tuple[int, int]]
    num_frames: int
    fps: float
    width: int
    height: int
    specs: list[ClipSpec] = field(default_factory=list)
    path: str | None = None

    @property
    def captions(self) -> list[str]:
        return [spec.caption for spec in self.specs]

    def to_dict(self) -> dict:
        return {
            "cut_frames": list(self.cut_frames),
            "scenes": [list(scene) for scene in self.scenes],
            "num_frames": self.num_frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "captions": self.captions,
            "specs": [spec.to_dict() for spec in self.specs],
            "path": self.path,
        }


def raw_video_specs(
    seed: int,
    num_scenes: int = 4,
    frames_per_scene: tuple[int, int] = (40, 90),
    width: int = 384,
    height: int = 256,
) -> list[ClipSpec]:
    """Clip specs of the scenes of a raw video: each its own seed, length and a palette whose main hue
    is at least 80 degrees from the previous scene's, so every cut changes the picture clearly."""
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be >= 1, got {num_scenes}")
    low, high = frames_per_scene
    if not 1 <= low <= high:
        raise ValueError(
            f"frames_per_scene must be (low, high) with 1 <= low <= high, got {frames_per_scene}"
        )
    rng = np.random.default_rng([int(seed), 11])
    specs = []
    hue = float(rng.uniform(0, 360))
    for _ in range(num_scenes):
        scene_seed = int(rng.integers(0, 2**31 - 1))
        length = int(rng.integers(low, high + 1))
        style = random_scene_style(np.random.default_rng([scene_seed, 12]), base_hue=hue)
        specs.append(random_clip_spec(scene_seed, num_frames=length, width=width, height=height, style=style))
        hue = (hue + rng.uniform(_MIN_HUE_STEP, 360 - _MIN_HUE_STEP)) % 360
    return specs


def _scene_ranges(specs: list[ClipSpec]) -> list[tuple[int, int]]:
    starts = np.concatenate([[0], np.cumsum([spec.num_frames for spec in specs])])
    return [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _info(specs: list[ClipSpec], fps: float, path: str | None = None) -> RawVideoInfo:
    scenes = _scene_ranges(specs)
    return RawVideoInfo(
        cut_frames=[start for start, _ in scenes[1:]],
        scenes=scenes,
        num_frames=scenes[-1][1],
        fps=float(fps),
        width=specs[0].width,
        height=specs[0].height,
        specs=specs,
        path=path,
    )


def _iter_scene_clips(specs: list[ClipSpec]) -> Iterator[SyntheticClip]:
    for spec in specs:
        yield render_clip(spec)


def render_raw_video(
    seed: int,
    num_scenes: int = 4,
    frames_per_scene: tuple[int, int] = (40, 90),
    width: int = 384,
    height: int = 256,
    fps: float = 24,
) -> tuple[np.ndarray, RawVideoInfo]:
    """The frames (T, H, W, 3) uint8 of a raw video in memory, and its RawVideoInfo."""
    specs = raw_video_specs(seed, num_scenes, frames_per_scene, width, height)
    frames = np.concatenate([clip.frames for clip in _iter_scene_clips(specs)])
    return frames, _info(specs, fps)


def write_raw_video(
    path: str | os.PathLike,
    seed: int,
    num_scenes: int = 4,
    frames_per_scene: tuple[int, int] = (40, 90),
    width: int = 384,
    height: int = 256,
    fps: float = 24,
    crf: int = 18,
) -> RawVideoInfo:
    """Write a raw video of ``num_scenes`` synthetic scenes joined by hard cuts as MP4 (atomically).

    Scene lengths are drawn from ``frames_per_scene`` (inclusive). Returns the exact cut frames.
    """
    specs = raw_video_specs(seed, num_scenes, frames_per_scene, width, height)
    with Mp4Writer(path, fps=fps, crf=crf) as writer:
        for clip in _iter_scene_clips(specs):
            writer.write_many(clip.frames)
    return _info(specs, fps, path=str(Path(path)))
