"""Training throughput (samples/s) of every stage, with a bare-loop baseline in the same run.

    python benchmarks/training_throughput.py [--size small|tiny] [--steps 6] [--batch-size 2] [--threads N]

For each stage it prints:
- ``bare``: compute_losses + backward + AdamW step on one pre-built batch in a plain Python loop (the
  model's own cost: no data loading, no accelerate, no logging);
- ``trainer``: the full `Trainer` loop (synthetic clips rendered on the fly, accelerate, logging);
- ``trainer+ckpt``: the same with gradient checkpointing.
The gap between ``bare`` and ``trainer`` is the loop's overhead (mostly rendering clips and building the
trajectory condition in the main process).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState, GradientState

from imageconductor.training.base_model import build_base_components, load_components, save_components
from imageconductor.training.config import BaseModelConfig, TrainingConfig
from imageconductor.training.run import build_dataset, build_task, run_training

SIZES = {
    "small": {"model": {}, "data": {"num_frames": 8, "height": 64, "width": 96}, "rank": 16},
    "tiny": {
        "model": {
            "block_out_channels": [16, 32],
            "norm_num_groups": 8,
            "cross_attention_dim": 32,
            "text_hidden_size": 32,
            "text_layers": 1,
            "text_heads": 2,
            "vae_block_out_channels": [8, 8, 8, 8],
            "motion_num_attention_heads": 2,
        },
        "data": {"num_frames": 4, "height": 48, "width": 64},
        "rank": 4,
    },
}


def reset() -> None:
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def make_config(
    stage: str, size: dict, model_dir: Path | None, output: Path, args, **extra
) -> TrainingConfig:
    return TrainingConfig.from_dict(
        {
            "stage": stage,
            "output_dir": str(output),
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "checkpoint_every": 0,
            "log_every": 1000,
            "data": {**size["data"], "num_clips": 1000, "grid_size": 16},
            "model": {
                "base": size["model"],
                "lora_rank": size["rank"],
                "pretrained_model_path": str(model_dir) if model_dir else None,
            },
            **extra,
        }
    )


def bare_loop(config: TrainingConfig) -> float:
    """samples/s of the task's step on one fixed batch, without the trainer."""
    reset()
    components = load_components(config.model.pretrained_model_path)
    task = build_task(config, components)
    task.wrapped_denoiser = task.denoiser
    dataset, _ = build_dataset(config)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(config.batch_size)])
    optimizer = torch.optim.AdamW(task.trainable_parameters(), lr=1e-4)

    def step(seed: int) -> None:
        task.compute_losses(batch, seed)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(0)  # warm-up
    started = time.perf_counter()
    for seed in range(1, config.max_steps + 1):
        step(seed)
    return config.max_steps * config.batch_size / (time.perf_counter() - started)


def trainer_loop(config: TrainingConfig) -> float:
    reset()
    return run_training(config, export=False).samples_per_second


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        base_dir = save_components(
            build_base_components(BaseModelConfig(**size["model"]), seed=0), root / "base"
        )
        reset()
        camera_dir = run_training(
            make_config("camera", size, base_dir, root / "camera-run", args, max_steps=1)
        ).final_dir
        data = size["data"]
        print(
            f"training throughput, size {args.size} ({data['num_frames']}x{data['height']}x{data['width']}), "
            f"batch {args.batch_size}, {args.steps} steps, {args.threads} thread(s), device cpu"
        )
        print(f"{'stage':<11} {'bare':>10} {'trainer':>10} {'trainer+ckpt':>13}   (samples/s)")
        for stage in ("vae", "base", "controlnet", "camera", "object"):
            model_dir = camera_dir if stage == "object" else base_dir
            config = make_config(stage, size, model_dir, root / stage, args)
            bare = bare_loop(config) if stage != "vae" else float("nan")
            trainer = trainer_loop(config)
            checkpointed = trainer_loop(
                make_config(stage, size, model_dir, root / f"{stage}-gc", args, gradient_checkpointing=True)
            )
            print(f"{stage:<11} {bare:>10.2f} {trainer:>10.2f} {checkpointed:>13.2f}", flush=True)


if __name__ == "__main__":
    main()
