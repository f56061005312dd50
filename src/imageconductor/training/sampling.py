"""Sample videos written during training: the current weights on a few fixed held-out synthetic clips."""

from __future__ import annotations

from pathlib import Path

from imageconductor.pipelines import ImageConductorPipeline, SamplingSettings
from imageconductor.training.base_model import ImageToVideoComponents
from imageconductor.training.config import TrainingConfig
from imageconductor.training.stages import StageModels
from imageconductor.training.synthetic_data import SyntheticClipDataset
from imageconductor.video_io import write_mp4

__all__ = ["HELD_OUT_SEED", "STAGE_SAMPLE_MODE", "write_stage_samples"]

#: Seed offset of the held-out clips (kept away from the training clips' seeds).
HELD_OUT_SEED = 987_654

#: Pipeline ``mode`` used for sample videos of each stage.
STAGE_SAMPLE_MODE = {"base": "none", "controlnet": "none", "camera": "camera", "object": "object"}


def write_stage_samples(
    config: TrainingConfig, components: ImageToVideoComponents, models: StageModels, directory: Path
) -> list[Path]:
    """Generate ``config.sample.num_samples`` videos with the stage's adapter; write MP4s; return paths.
    The ``models`` of the stage are put in eval mode meanwhile and back as they were afterwards."""
    data = config.data
    kinds = {"camera": ["camera"], "object": ["object", "mixed"]}.get(config.stage)
    clips = SyntheticClipDataset(
        config.sample.num_samples,
        data.num_frames,
        data.height,
        data.width,
        seed=HELD_OUT_SEED + config.sample.seed,
        kinds=kinds,
        grid_size=data.grid_size,
        flow="dense",
        **data.world_settings(),
        flow_encoding=components.flow_encoding,
    )
    pipeline = ImageConductorPipeline(**components.as_dict())
    pipeline.set_progress_bar_config(disable=True)
    written = []
    was_training = {name: model.training for name, model in models.named_models()}
    for _, model in models.named_models():
        model.eval()
    try:
        for index in range(len(clips)):
            clip = clips[index]
            first_frame = ((clip["frames"][:, 0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
            sampling = SamplingSettings(
                mode=STAGE_SAMPLE_MODE[config.stage],
                num_frames=data.num_frames,
                height=data.height,
                width=data.width,
                num_inference_steps=config.sample.num_inference_steps,
                guidance_scale=config.sample.guidance_scale,
                seed=config.sample.seed + index,
            )
            video = pipeline(
                prompt=clip["caption"],
                image=first_frame,
                flow_condition=clip["flow_condition"][None],
                output_type="np",
                **sampling.pipeline_kwargs(),
            ).frames[0]
            path = directory / f"sample-{index:02d}.mp4"
            write_mp4((video * 255).round().clip(0, 255).astype("uint8"), path, pad_odd=True)
            written.append(path)
    finally:
        for name, model in models.named_models():
            model.train(was_training[name])
    return written
