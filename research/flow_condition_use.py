"""How much does a model's motion ControlNet use the trajectory condition? Denoising loss per timestep.

    python research/flow_condition_use.py MODEL [MODEL ...] [--clips 32] [--seed 10000]

For held-out synthetic clips of the model's world (its ``model_index.json``), the v/ε-prediction
loss of the motion ControlNet without LoRA (stage "controlnet") at fixed timesteps, with the flow
condition built from:

* ``sparse``: 1–8 of the clip's own tracks drawn ∝ motion (as in training and at inference),
* ``dense``: all of the clip's grid tracks,
* ``zero``: no motion at all,
* ``shuffled``: another clip's sparse condition (right format, wrong motion);
* ``negated``: the clip's sparse condition with its sign flipped (right places, opposite directions);
* ``dense negated``: the same for the dense condition.

A model that reads the trajectories scores ``sparse`` below ``shuffled`` and ``zero``; a model that
ignores them scores them alike. A model that reads only *where* things move, not *which way*, scores
``negated`` like ``sparse``. Each row uses the same noise and timesteps for every condition.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

TIMESTEPS = (100, 300, 500, 700, 900, 999)
CONDITIONS = ("sparse", "dense", "zero", "shuffled", "negated", "dense negated")


def condition_losses(model: Path, clips: int, seed: int, batch: int = 8) -> dict[int, dict[str, float]]:
    """``{timestep: {condition: mean loss}}`` for ``clips`` held-out clips of ``model``'s world."""
    import torch
    from torch.utils.data import default_collate

    from imageconductor.conditioning import image_condition
    from imageconductor.evaluation.synthetic_benchmark import warn_if_not_synthetic
    from imageconductor.pipelines import VideoSize, read_model_index, synthetic_world
    from imageconductor.training.base_model import load_components
    from imageconductor.training.conditions import curriculum_flow_condition, normalize_batch
    from imageconductor.training.config import CurriculumConfig, TrainingConfig
    from imageconductor.training.diffusion_task import DiffusionTrainingTask
    from imageconductor.training.synthetic_data import SyntheticClipDataset

    warn_if_not_synthetic(model)
    index = read_model_index(model)
    size = VideoSize.native(index)
    frames, height, width = size.num_frames, size.height, size.width
    world = synthetic_world(index)
    config = TrainingConfig.from_dict(
        {
            "stage": "controlnet",
            "output_dir": str(model),
            "model": {"pretrained_model_path": str(model)},
            "data": {"num_frames": frames, "height": height, "width": width, **world},
        }
    )
    components = load_components(model)
    task = DiffusionTrainingTask(config, components)
    task.denoiser.eval()
    clips_data = SyntheticClipDataset(clips, frames, height, width, seed=seed, **world)
    data = normalize_batch(default_collate([clips_data[i] for i in range(clips)]))
    generator = torch.Generator().manual_seed(0)
    losses: dict[int, dict[str, float]] = {}
    with torch.no_grad():
        latents = task.encode_frames(data.frames, generator)
        encoding = components.flow_encoding
        sparse = curriculum_flow_condition(data, 0, seed, CurriculumConfig(dense_steps=0), encoding)
        dense = curriculum_flow_condition(data, 0, seed, CurriculumConfig(dense_steps=-1), encoding)
        conditions = {
            "sparse": sparse,
            "dense": dense,
            "zero": torch.zeros_like(sparse),
            "shuffled": sparse.roll(1, dims=0),
            "negated": -sparse,
            "dense negated": -dense,
        }
        input_ids = task.tokenize(data.captions)
        first_frame = image_condition(latents[:, :, :1], frames)
        scheduler = task.noise_scheduler
        for timestep in TIMESTEPS:
            noise = torch.randn(latents.shape, generator=generator)
            steps = torch.full((clips,), timestep)
            noisy = scheduler.add_noise(latents, noise, steps)
            target = noise
            if scheduler.config.prediction_type == "v_prediction":
                target = scheduler.get_velocity(latents, noise, steps)
            losses[timestep] = {}
            for name, condition in conditions.items():
                total = 0.0
                for start in range(0, clips, batch):
                    rows = slice(start, start + batch)
                    prediction = task.denoiser(
                        noisy[rows], steps[rows], input_ids[rows], first_frame[rows], condition[rows]
                    )
                    total += float(((prediction - target[rows]) ** 2).mean(dim=(1, 2, 3, 4)).sum())
                losses[timestep][name] = total / clips
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="make_default model folders")
    parser.add_argument("--clips", type=int, default=32, help="held-out clips (default 32)")
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the held-out clips")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    for model in args.models:
        losses = condition_losses(model, args.clips, args.seed)
        print(f"\n{model}: denoising loss of the motion ControlNet (no LoRA), {args.clips} clips")
        gains = {
            "sparse vs shuffled": ("sparse", "shuffled"),
            "sparse vs negated": ("sparse", "negated"),
            "dense vs negated": ("dense", "dense negated"),
        }
        print("| timestep | " + " | ".join([*CONDITIONS, *gains]) + " |")
        print("|---" * (len(CONDITIONS) + len(gains) + 1) + "|")
        for timestep, row in losses.items():
            cells = [f"{row[name]:.4f}" for name in CONDITIONS]
            cells += [f"{1 - row[ours] / row[other]:+.1%}" for ours, other in gains.values()]
            print(f"| {timestep} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
