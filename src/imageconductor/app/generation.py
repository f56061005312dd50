"""One generation run of the app: sample the pipeline, write the video, its side-by-side and optional GIFs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PIL.Image

from imageconductor.app.settings import GenerationSettings, native_video_size
from imageconductor.pipelines import SamplingSettings, output_to_uint8
from imageconductor.trajectories import TrajectorySet
from imageconductor.video_outputs import write_generation_outputs

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
    (in the model frame) and write ``video.mp4`` and ``video.side_by_side.mp4`` (generated | with the tracks drawn
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

    sampling = SamplingSettings(
        mode=settings.mode,
        num_frames=settings.num_frames,
        height=height,
        width=width,
        num_inference_steps=num_steps,
        guidance_scale=settings.guidance_scale,
        camera_free_guidance=settings.camera_free_guidance,
        motion_guidance_scale=settings.motion_guidance,
        seed=settings.seed,
        scheduler=settings.scheduler,
    )
    result = pipe(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        image=image,
        trajectories=trajectories,
        output_type="pt",
        callback_on_step_end=after_step,
        **sampling.pipeline_kwargs(),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = write_generation_outputs(
        output_to_uint8(result.frames),
        trajectories.rescaled(width, height),
        out_dir / "video.mp4",
        fps=FPS,
        gif=gif,
        colors=colors,
    )
    gifs = tuple(written[name] for name in ("gif", "side_by_side_gif") if name in written)
    return GenerationResult(
        video=written["mp4"], side_by_side=written["side_by_side"], gifs=gifs, seed=settings.seed
    )
