"""The accelerate-based training loop, shared by every stage.

`Trainer` knows nothing about diffusion: a `TrainingTask` supplies the networks, the trainable parameters
and the loss of one batch (see `training.diffusion_task` for the image-to-video task). The trainer owns
devices, multi-GPU, mixed precision, gradient accumulation, the optimizer and LR schedule, logging,
sample intervals, and checkpoints that resume exactly:

- ``accelerator.save_state`` stores the prepared networks, optimizer, LR scheduler and the RNG states;
- a registered `TrainingProgress` stores the optimizer step and the data position (epoch, micro-batches
  consumed in that epoch); on resume the data loader is re-seeded for that epoch and the consumed
  batches are skipped;
- every random draw of the loss (noise, timesteps, caption dropout, sparse-track choice) comes from a
  generator seeded by ``(seed, epoch, batch index, process)`` (`batch_seed`), and torch's global RNG
  (dropout inside the networks) is re-seeded with the same value before each micro-batch, so nothing
  depends on how many batches ran in this process.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration
from diffusers.optimization import get_scheduler
from safetensors import safe_open
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler
from tqdm.auto import tqdm

from imageconductor.pipelines import write_model_settings
from imageconductor.training.config import SAVED_CONFIG_FILE, TrainingConfig

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"


class TrainingTask(ABC):
    """What a stage trains and how one batch turns into a loss."""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network the loss uses, by name. Those holding trainable parameters get prepared."""

    @abstractmethod
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates (``requires_grad`` already set)."""

    @abstractmethod
    def compute_losses(self, batch: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
        """Loss terms of one micro-batch; ``"loss"`` is the total that is back-propagated.

        ``seed`` seeds every random draw of this batch (noise, timesteps, dropout of captions...).
        """

    def use_prepared(self, prepared: dict[str, nn.Module], accelerator: Accelerator) -> None:  # noqa: B027
        """Receive the accelerate-wrapped networks (default: nothing to do)."""

    def enable_gradient_checkpointing(self) -> None:  # noqa: B027
        """Turn on activation checkpointing in the trained networks (default: nothing to do)."""

    def export(self, directory: Path, accelerator: Accelerator) -> None:  # noqa: B027
        """Write the stage's result (e.g. a LoRA adapter as safetensors) to ``directory``."""

    def sample(self, directory: Path, step: int, accelerator: Accelerator) -> list[Path]:
        """Write sample videos for the current weights; return their paths (default: none)."""
        return []

    def on_step(self, step: int) -> None:  # noqa: B027
        """Called with the optimizer step about to run (curriculum switches live here)."""


@dataclass
class TrainingProgress:
    """The loop position saved with each checkpoint (registered with accelerate)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    #: seconds spent in the training loop to reach ``step``, summed over the runs that led here
    loop_seconds: float = 0.0

    def state_dict(self) -> dict[str, float]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "loop_seconds": self.loop_seconds,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.loop_seconds = float(state.get("loop_seconds", 0.0))  # absent from older checkpoints


class EpochShuffleSampler(Sampler[int]):
    """A fresh seeded permutation of ``range(size)`` each epoch (``set_epoch``), independent of global RNG."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.permutation(self.size).tolist())


def batch_seed(seed: int, epoch: int, batch_index: int, process_index: int) -> int:
    """A 63-bit seed for one micro-batch, independent for every (seed, epoch, batch, process)."""
    state = np.random.SeedSequence([seed, epoch, batch_index, process_index]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def find_latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint folder with the highest step under ``output_dir/checkpoints``, if any."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    found = [p for p in found if p.name[len(CHECKPOINT_PREFIX) :].isdigit()]
    return max(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), default=None)


class Trainer:
    """Runs ``config.max_steps`` optimizer steps of ``task`` on ``dataset``.

    ``dataset`` yields per-sample dicts (collated by ``collate_fn``, default: torch's) or is an
    `IterableDataset` yielding them; a map-style dataset is shuffled per epoch by `EpochShuffleSampler`.
    """

    def __init__(
        self,
        config: TrainingConfig,
        task: TrainingTask,
        dataset: Dataset | IterableDataset,
        collate_fn: Any = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.config = config
        self.task = task
        self.output_dir = Path(config.output_dir)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir)),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        self.progress = TrainingProgress()
        self.history: list[dict[str, float]] = []
        self.earlier_loop_seconds = 0.0
        self._dataset = dataset
        self._collate_fn = collate_fn
        self._setup()

    # ---- set-up ------------------------------------------------------------------------------------

    def _setup(self) -> None:
        config, accelerator = self.config, self.accelerator
        if config.gradient_checkpointing:
            self.task.enable_gradient_checkpointing()
        parameters = self.task.trainable_parameters()
        if not parameters:
            raise ValueError("the training task has no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            parameters,
            lr=config.optim.learning_rate,
            betas=(config.optim.adam_beta1, config.optim.adam_beta2),
            eps=config.optim.adam_epsilon,
            weight_decay=config.optim.weight_decay,
        )
        # accelerate steps a prepared scheduler once per process for every optimizer step.
        processes = accelerator.num_processes
        self.lr_scheduler = get_scheduler(
            config.optim.lr_scheduler,
            optimizer=self.optimizer,
            num_warmup_steps=config.optim.warmup_steps * processes,
            num_training_steps=config.max_steps * processes,
        )
        self.sampler = None
        if isinstance(self._dataset, IterableDataset):
            loader = DataLoader(
                self._dataset,
                batch_size=config.batch_size,
                num_workers=config.data.num_workers,
                collate_fn=self._collate_fn,
                generator=torch.Generator().manual_seed(config.seed),
            )
        else:
            self.sampler = EpochShuffleSampler(len(self._dataset), config.seed)
            loader = DataLoader(
                self._dataset,
                batch_size=config.batch_size,
                sampler=self.sampler,
                num_workers=config.data.num_workers,
                collate_fn=self._collate_fn,
                drop_last=True,
                generator=torch.Generator().manual_seed(config.seed),
            )
        networks = self.task.networks()
        trained_names = [
            name for name, net in networks.items() if any(p.requires_grad for p in net.parameters())
        ]
        prepared = accelerator.prepare(*[networks[name] for name in trained_names])
        if len(trained_names) == 1:
            prepared = (prepared,)
        self.optimizer, self.lr_scheduler, self.dataloader = accelerator.prepare(
            self.optimizer, self.lr_scheduler, loader
        )
        wrapped = dict(zip(trained_names, prepared, strict=True))
        for name, net in networks.items():
            if name not in wrapped:
                net.to(accelerator.device)
        self.trained_networks = [wrapped[name] for name in trained_names]
        self.task.use_prepared(wrapped, accelerator)
        accelerator.register_for_checkpointing(self.progress)
        accelerator.register_save_state_pre_hook(self._keep_trainable_weights)
        self._parameters = parameters

    # ---- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Save the full training state at the current step (atomically: written aside, then renamed)."""
        accelerator = self.accelerator
        root = self.output_dir / "checkpoints"
        final = root / f"{CHECKPOINT_PREFIX}{self.progress.step:08d}"
        temporary = root / f".tmp-{CHECKPOINT_PREFIX}{self.progress.step:08d}"
        if accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temporary))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (temporary / "training_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            shutil.rmtree(final, ignore_errors=True)
            temporary.rename(final)
            self._prune_checkpoints(root)
        accelerator.wait_for_everyone()
        return final

    def _prune_checkpoints(self, root: Path) -> None:
        kept = sorted(
            (p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)),
            key=lambda p: p.name,
        )
        for old in kept[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def _keep_trainable_weights(models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        # Checkpoints hold the trained parameters only: frozen networks come from the model folder, and a
        # LoRA stage's checkpoint stays the size of its adapter.
        for index, model in enumerate(models):
            trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
            weights[index] = {name: value for name, value in weights[index].items() if name in trained}

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore networks, optimizer, scheduler, RNG states and the data position from ``path``.

        Raises ``ValueError`` if the checkpoint's weights are not exactly this run's trained parameters.
        """

        path = Path(path)
        if not (path / "custom_checkpoint_0.pkl").is_file():
            raise FileNotFoundError(f"{path} is not a training checkpoint (no custom_checkpoint_0.pkl)")
        for index, model in enumerate(self.trained_networks):
            file = path / ("model.safetensors" if index == 0 else f"model_{index}.safetensors")
            with safe_open(str(file), framework="pt") as handle:
                stored = set(handle.keys())
            trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
            if stored != trained:
                missing, unexpected = sorted(trained - stored), sorted(stored - trained)
                raise ValueError(
                    f"checkpoint {file} does not match this run's trained parameters: "
                    f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
                )
        self.accelerator.load_state(str(path), strict=False)
        logger.info("resumed from %s at step %d", path, self.progress.step)

    # ---- the loop ----------------------------------------------------------------------------------

    def train(self, until_step: int | None = None) -> list[dict[str, float]]:
        """Run until ``max_steps`` (or stop early at ``until_step``, as an interrupted run would).

        Returns the per-step logged values (loss terms, lr) of the steps run by this call.
        """
        config, accelerator, progress = self.config, self.accelerator, self.progress
        last_step = config.max_steps if until_step is None else min(until_step, config.max_steps)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.output_dir / "logs" / "train.jsonl"
        if accelerator.is_main_process:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            config.save(self.output_dir / SAVED_CONFIG_FILE)
        bar = tqdm(
            total=config.max_steps,
            initial=progress.step,
            desc=f"train {config.stage}",
            disable=not accelerator.is_local_main_process,
        )
        window: dict[str, list[float]] = {}
        samples_seen = 0
        started = time.perf_counter()
        self.earlier_loop_seconds = progress.loop_seconds  # of the interrupted runs this one resumes
        step_terms: dict[str, list[float]] = {}
        while progress.step < last_step:
            loader = self._loader_for_position()
            for batch in loader:
                self.task.on_step(progress.step)
                seed = batch_seed(
                    config.seed, progress.epoch, progress.batch_in_epoch, accelerator.process_index
                )
                # Global RNG (dropout inside the networks) keyed to the batch too: resume-exact.
                torch.manual_seed(seed)
                with accelerator.accumulate(*self.trained_networks):
                    terms = self.task.compute_losses(batch, seed)
                    loss = terms["loss"]
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"non-finite loss {loss.item()} at step {progress.step} (epoch {progress.epoch}, "
                            f"batch {progress.batch_in_epoch})"
                        )
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.optim.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(self._parameters, config.optim.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                progress.batch_in_epoch += 1
                samples_seen += _batch_size(batch) * accelerator.num_processes
                for name, value in terms.items():
                    step_terms.setdefault(name, []).append(float(value.detach()))
                if not accelerator.sync_gradients:
                    continue
                progress.step += 1
                record = self._finish_step(step_terms)
                step_terms = {}
                self.history.append(record)
                for name, value in record.items():
                    window.setdefault(name, []).append(value)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                if config.log_every and progress.step % config.log_every == 0:
                    elapsed = time.perf_counter() - started
                    self._log(log_path, window, samples_seen / max(elapsed, 1e-9))
                    window = {}
                progress.loop_seconds = self.earlier_loop_seconds + time.perf_counter() - started
                if config.checkpoint_every and progress.step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if config.sample_every and progress.step % config.sample_every == 0:
                    self._sample()
                if progress.step >= last_step:
                    break
            else:
                progress.epoch += 1
                progress.batch_in_epoch = 0
                continue
            break
        bar.close()
        if window:
            self._log(log_path, window, samples_seen / max(time.perf_counter() - started, 1e-9))
        self.samples_per_second = samples_seen / max(time.perf_counter() - started, 1e-9)
        progress.loop_seconds = self.earlier_loop_seconds + time.perf_counter() - started
        return self.history

    def export(self, directory: str | Path | None = None) -> Path:
        """Write the stage's result (networks/adapters) to ``directory`` (default ``output_dir/final``)."""
        directory = Path(directory) if directory is not None else self.output_dir / "final"
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            directory.mkdir(parents=True, exist_ok=True)
            self.task.export(directory, self.accelerator)
            self._state_synthetic_size(directory)
        self.accelerator.wait_for_everyone()
        return directory

    def _state_synthetic_size(self, directory: Path) -> None:
        """A model trained on the synthetic world records the video size and world it learned
        (``native_size``, ``synthetic_world``), so that generating or evaluating from the exported folder
        renders its own size instead of the released model's 16x256x384."""
        data = self.config.data
        if data.source != "synthetic" or not (directory / "model_index.json").is_file():
            return
        write_model_settings(directory, **data.synthetic_model_settings(self.config.seed))

    def _loader_for_position(self):
        progress = self.progress
        if self.sampler is not None:
            self.sampler.set_epoch(progress.epoch)
        if hasattr(self._dataset, "set_epoch"):
            self._dataset.set_epoch(progress.epoch)
        self.dataloader.set_epoch(progress.epoch)
        if progress.batch_in_epoch:
            return self.accelerator.skip_first_batches(self.dataloader, progress.batch_in_epoch)
        return self.dataloader

    def _finish_step(self, step_terms: dict[str, list[float]]) -> dict[str, float]:
        record = {"step": float(self.progress.step)}
        for name, values in step_terms.items():
            local = torch.tensor(sum(values) / len(values), device=self.accelerator.device)
            record[name] = float(self.accelerator.gather(local.reshape(1)).mean())
        record["lr"] = float(self.lr_scheduler.get_last_lr()[0])
        return record

    def _log(self, path: Path, window: dict[str, list[float]], samples_per_second: float) -> None:
        if not self.accelerator.is_main_process:
            return
        entry: dict[str, Any] = {"step": self.progress.step, "epoch": self.progress.epoch}
        for name, values in window.items():
            if name != "step":
                entry[name] = sum(values) / len(values)
        entry["samples_per_second"] = samples_per_second
        with path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        logger.info(
            "step %d: %s",
            self.progress.step,
            ", ".join(f"{k}={v:.5g}" for k, v in entry.items() if k != "step"),
        )

    def _sample(self) -> None:
        directory = self.output_dir / "samples" / f"step-{self.progress.step:08d}"
        if self.accelerator.is_main_process:
            directory.mkdir(parents=True, exist_ok=True)
            paths = self.task.sample(directory, self.progress.step, self.accelerator)
            if paths:
                logger.info("wrote %d sample(s) to %s", len(paths), directory)
        self.accelerator.wait_for_everyone()


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return int(value.shape[0])
            if isinstance(value, list):
                return len(value)
    if isinstance(batch, list | tuple) and batch:
        return _batch_size(batch[0]) if isinstance(batch[0], dict) else int(batch[0].shape[0])
    return 1
