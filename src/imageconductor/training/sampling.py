"""Sample videos written during training: the current weights on a few fixed held-out synthetic clips."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imageconductor.training.synthetic_data import SyntheticClipDataset

if TYPE_CHECKING:
    from imageconductor.training.diffusion_task import DiffusionTrainingTask

#: Seed offset of the held-out clips (kept away from the training clips' seeds).
HELD_OUT_SEED = 987_654


def write_stage_samples(task: DiffusionTrainingTask, directory: Path, step: int) -> list[Path]:
    """Generate ``config.sample.num_samples`` videos with the stage's adapter; write MP4s; return paths."""
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline
    from imageconductor.training.diffusion_task import STAGE_SAMPLE_MODE
    from imageconductor.video_io import write_mp4

    config = task.config
    kinds = {"camera": ["camera"], "object": ["object", "mixed"]}.get(config.stage)
    clips = SyntheticClipDataset(
        config.sample.num_samples,
        config.data.num_frames,
        config.data.height,
        config.data.width,
        seed=HELD_OUT_SEED + config.sample.seed,
        kinds=kinds,
        grid_size=config.data.grid_size,
        flow="dense",
        texture_scale=config.data.texture_scale,
        motion_scale=config.data.motion_scale,
        flow_encoding=task.components.flow_encoding,
    )
    components = task.components
    pipeline = ImageConductorPipeline(**components.as_dict())
    pipeline.set_progress_bar_config(disable=True)
    written = []
    was_training = {name: model.training for name, model in task.models.named_models()}
    for _, model in task.models.named_models():
        model.eval()
    try:
        for index in range(len(clips)):
            clip = clips[index]
            first_frame = ((clip["frames"][:, 0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
            video = pipeline(
                prompt=clip["caption"],
                image=first_frame,
                flow_condition=clip["flow_condition"][None],
                mode=STAGE_SAMPLE_MODE[config.stage],
                num_inference_steps=config.sample.num_inference_steps,
                guidance_scale=config.sample.guidance_scale,
                generator=torch.Generator().manual_seed(config.sample.seed + index),
                output_type="np",
            ).frames[0]
            path = directory / f"sample-{index:02d}.mp4"
            write_mp4((video * 255).round().clip(0, 255).astype("uint8"), path, pad_odd=True)
            written.append(path)
    finally:
        for name, model in task.models.named_models():
            model.train(was_training[name])
    return written
