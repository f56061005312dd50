"""One generation run of the app: sample the pipeline, write the video, its side-by-side and optional GIFs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from imageconductor.app.settings import GenerationSettings, native_video_size
from imageconductor.overlay import draw_trajectories, side_by_side
from imageconductor.pipelines.image_conductor import output_to_uint8
from imageconductor.trajectories import TrajectorySet, resample_track
from imageconductor.video_io import write_gif, write_mp4

__all__ = ["FPS", "Cancelled", "GenerationResult", "generate_video"]

#: Frames per second of the written videos.
FPS = 8.0


class Cancelled(Exception):
    """The run was cancelled between two sampling steps."""


@dataclass(frozen=True)
class GenerationResult:
    """Files of one run and the seed that reproduces it."""

    video: Path
    side_by_side: Path
    gifs: tuple[Path, ...]
    seed: int


def generate_video(
    pipe: Any,
    image: PIL.Image.Image,
    trajectories: TrajectorySet,
    settings: GenerationSettings,
    out_dir: Path,
    *,
    gif: bool = False,
    colors: Sequence[tuple[int, int, int]] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> GenerationResult:
    """Sample ``pipe`` on ``image`` (centre-cropped to the model frame by the pipeline) with ``trajectories``
    (in the model frame) and write ``video.mp4`` and ``side_by_side.mp4`` (generated | with the tracks drawn
    in ``colors``), plus both as GIFs when ``gif`` is set, into ``out_dir``.

    ``on_step(done, total)`` is called after every sampling step; when ``should_stop()`` turns true the run
    stops after the current step with :class:`Cancelled`. Bad inputs raise ValueError from the pipeline.
    """
    _, height, width = native_video_size(pipe)
    num_steps = settings.steps

    def after_step(_pipe: Any, step: int, _timestep: Any, _tensors: dict) -> dict:
        if should_stop is not None and should_stop():
            raise Cancelled
        if on_step is not None:
            on_step(step + 1, num_steps)
        return {}

    result = pipe(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        image=image,
        trajectories=trajectories,
        mode=settings.mode,
        num_frames=settings.num_frames,
        height=height,
        width=width,
        num_inference_steps=num_steps,
        guidance_scale=settings.guidance_scale,
        camera_free_guidance=settings.camera_free_guidance,
        motion_guidance_scale=settings.motion_guidance,
        generator=torch.Generator(device=pipe.device).manual_seed(settings.seed),
        output_type="pt",
        callback_on_step_end=after_step,
    )
    frames = output_to_uint8(result.frames)
    model_tracks = trajectories.rescaled(width, height).tracks
    resampled = [np.asarray(resample_track(track, settings.num_frames)) for track in model_tracks]
    panel = side_by_side(frames, draw_trajectories(frames, resampled, colors=colors))
    out_dir.mkdir(parents=True, exist_ok=True)
    video = write_mp4(frames, out_dir / "video.mp4", fps=FPS, pad_odd=True)
    both = write_mp4(panel, out_dir / "side_by_side.mp4", fps=FPS, pad_odd=True)
    gifs: tuple[Path, ...] = ()
    if gif:
        gifs = (
            write_gif(frames, out_dir / "video.gif", fps=FPS),
            write_gif(panel, out_dir / "side_by_side.gif", fps=FPS),
        )
    return GenerationResult(video=video, side_by_side=both, gifs=gifs, seed=settings.seed)
