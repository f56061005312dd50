"""One training run from a `TrainingConfig`: components, data, task, trainer, resume, export.

Stage outputs are complete model folders (``<output_dir>/final``): the next stage points
``model.pretrained_model_path`` at it, the pipeline loads it directly. Order for the embedded default:
``vae → base → controlnet → camera → object`` (see `training.make_default`).
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from imageconductor.data import ClipDatasetConfig, TrajectoryClipDataset, collate_clips, resolve_shards
from imageconductor.models.controlnets import ImageConductorControlNetModel
from imageconductor.models.vae import vae_scale_factor
from imageconductor.training.base_model import (
    ImageToVideoComponents,
    base_scheduler,
    build_base_components,
    load_components,
)
from imageconductor.training.config import TrainingConfig
from imageconductor.training.diffusion_task import DiffusionTrainingTask
from imageconductor.training.synthetic_data import SyntheticClipDataset
from imageconductor.training.trainer import Trainer, TrainingTask, find_latest_checkpoint
from imageconductor.training.vae_task import VaeTrainingTask
from imageconductor.trajectories import RELEASED_FLOW_ENCODING, FlowEncoding

logger = logging.getLogger(__name__)

#: Synthetic clip kinds each stage trains on unless ``data.kinds`` says otherwise (paper §2.4: the motion
#: ControlNet on mixed data, the camera LoRA on camera-only clips, the object LoRA on mixed clips).
DEFAULT_STAGE_KINDS: dict[str, list[str] | None] = {
    "vae": None,
    "base": None,
    "controlnet": None,
    "camera": ["camera"],
    "object": ["mixed"],
}
#: Curated clip kinds (shard metadata ``kind``) each stage trains on unless ``data.curated_kinds`` says
#: otherwise: the camera LoRA on camera-only clips, every other stage on all clips.
DEFAULT_STAGE_CURATED_KINDS: dict[str, list[str] | None] = {"camera": ["camera"]}
RESUME_CHOICES = ("latest", "auto")


@dataclass
class TrainingResult:
    """What a run leaves behind."""

    output_dir: Path
    final_dir: Path | None
    history: list[dict[str, float]]
    samples_per_second: float
    resumed_from: Path | None
    #: training-loop seconds of the interrupted runs this one resumed, up to its checkpoint (0 if fresh)
    earlier_seconds: float = 0.0


def build_components(config: TrainingConfig) -> ImageToVideoComponents:
    """The networks a stage starts from (built from scratch only for stage 0 without a model path)."""
    path = config.model.pretrained_model_path
    if path:
        components = load_components(path)
    elif config.stage in ("vae", "base"):
        if config.stage == "base":
            logger.warning("stage 'base' without model.pretrained_model_path: the VAE is untrained")
        components = build_base_components(config.model.base, seed=config.seed)
    else:
        raise ValueError(f"stage {config.stage!r} needs model.pretrained_model_path")
    factor = vae_scale_factor(components.vae.config.block_out_channels)
    if config.data.height % factor or config.data.width % factor:
        raise ValueError(
            f"data.height and data.width must be multiples of {factor} (the model's VAE factor), "
            f"got {config.data.height}x{config.data.width}"
        )
    if config.stage == "base":
        # The base stage fixes the noise parametrisation every later stage and the pipeline inherit.
        components.scheduler = base_scheduler(config.model.base)
    if config.model.flow_controlnet_path:
        flow_path = Path(config.model.flow_controlnet_path)
        if (flow_path / "flow_controlnet").is_dir():
            flow_path = flow_path / "flow_controlnet"
        components.flow_controlnet = ImageConductorControlNetModel.from_pretrained(str(flow_path))
    wanted = config.model.flow_encoding
    if wanted is not None and wanted != components.flow_encoding:
        if config.stage in ("camera", "object"):
            logger.warning(
                "stage %s: model.flow_encoding %s differs from the loaded model's %s, with which its motion "
                "ControlNet was trained",
                config.stage,
                wanted,
                components.flow_encoding,
            )
        components.flow_encoding = wanted
    return components


def build_dataset(
    config: TrainingConfig, flow_encoding: FlowEncoding = RELEASED_FLOW_ENCODING
) -> tuple[Dataset, object]:
    """``(dataset, collate_fn)`` for the configured source; synthetic clips carry tracks, no flow.

    ``flow_encoding`` is how the shard loader blurs its dense condition.
    """
    data = config.data
    if data.source == "synthetic":
        kinds = data.kinds if data.kinds is not None else DEFAULT_STAGE_KINDS[config.stage]
        dataset = SyntheticClipDataset(
            data.num_clips,
            data.num_frames,
            data.height,
            data.width,
            seed=config.seed,
            kinds=kinds,
            grid_size=data.grid_size,
            flow="none",
            **data.world_settings(),
            sprite_masks=config.stage == "vae" and config.loss.vae_sprite_weight > 0,
        )
        return dataset, None

    if data.kinds is not None:
        logger.warning("data.kinds is ignored for shards: data.curated_kinds selects curated clips by kind")
    # dense: the task derives sparse conditions from the full track set per the curriculum
    dataset = TrajectoryClipDataset(
        expand_shard_patterns(data.shards),
        ClipDatasetConfig(
            num_frames=data.num_frames,
            tracks="dense",
            seed=config.seed,
            kinds=curated_kinds(config),
            **flow_encoding.as_kwargs(),
        ),
    )
    return dataset, collate_clips


def curated_kinds(config: TrainingConfig) -> tuple[str, ...] | None:
    """The curated clip kinds a shards-fed stage trains on (None: every clip)."""
    kinds = config.data.curated_kinds
    if kinds is None:
        kinds = DEFAULT_STAGE_CURATED_KINDS.get(config.stage)
    if kinds is None or set(kinds) >= {"camera", "object"}:
        return None
    return tuple(dict.fromkeys(kinds))


def expand_shard_patterns(entries: list[str]) -> list[str]:
    """Shard files of each entry: a glob pattern, a curation output / shard folder, or a file."""
    paths: list[str] = []
    for entry in entries:
        if any(char in entry for char in "*?["):
            matched = sorted(glob.glob(entry))
            if not matched:
                raise FileNotFoundError(f"data.shards pattern {entry!r} matches no file")
            paths.extend(matched)
        elif Path(entry).is_dir():
            paths.extend(str(path) for path in resolve_shards(entry))
        else:
            paths.append(entry)
    return paths


def build_task(config: TrainingConfig, components: ImageToVideoComponents) -> TrainingTask:
    if config.stage == "vae":
        data = config.data
        held_out = SyntheticClipDataset(
            8,
            data.num_frames,
            data.height,
            data.width,
            seed=config.seed + 10_007,
            **data.world_settings(),
        )
        calibration = [{"frames": held_out[i]["frames"][None], "caption": [""]} for i in range(len(held_out))]
        return VaeTrainingTask(config, components, calibration)

    return DiffusionTrainingTask(config, components)


def run_training(
    config: TrainingConfig,
    resume: str | Path | None = None,
    until_step: int | None = None,
    export: bool = True,
) -> TrainingResult:
    """Train one stage. ``resume``: a checkpoint folder, ``"latest"`` (must exist) or ``"auto"`` (if any).

    ``until_step`` stops early (as an interruption would; the checkpoint of that step is written).
    """
    output_dir = Path(config.output_dir)
    checkpoint = _resolve_resume(resume, output_dir)
    if checkpoint is None and find_latest_checkpoint(output_dir) is not None:
        logger.warning(
            "%s already holds checkpoints; starting a fresh run (use --resume to continue)", output_dir
        )
    components = build_components(config)
    task = build_task(config, components)
    dataset, collate_fn = build_dataset(config, components.flow_encoding)
    trainer = Trainer(config, task, dataset, collate_fn=collate_fn)
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    history = trainer.train(until_step)
    stopped_early = trainer.progress.step < config.max_steps
    if stopped_early and not (
        config.checkpoint_every and trainer.progress.step % config.checkpoint_every == 0
    ):
        trainer.save_checkpoint()
    final_dir = None
    if export and not stopped_early:
        final_dir = trainer.export()
    return TrainingResult(
        output_dir, final_dir, history, trainer.samples_per_second, checkpoint, trainer.earlier_loop_seconds
    )


def _resolve_resume(resume: str | Path | None, output_dir: Path) -> Path | None:
    if resume is None:
        return None
    if str(resume) in RESUME_CHOICES:
        latest = find_latest_checkpoint(output_dir)
        if latest is None and str(resume) == "latest":
            raise FileNotFoundError(f"--resume latest: no checkpoint under {output_dir / 'checkpoints'}")
        return latest
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {path}")
    return path
