"""Stage "vae" (first half of stage 0): train the small KL autoencoder of the embedded default.

Loss per micro-batch: mean squared reconstruction error of a few random frames per clip (sprite pixels
weighted ``1 + loss.vae_sprite_weight`` when set, from the batch's ``sprite_mask``) plus
``vae_kl_weight`` × the KL divergence of the posterior to N(0, I). On export the latent scaling factor
is calibrated so the scaled latents have unit standard deviation (SD1.5's 0.18215 plays that role), then
the whole (otherwise untrained) model folder is written, ready for stage "base".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from imageconductor.training.base_model import ImageToVideoComponents, save_components
from imageconductor.training.conditions import normalize_batch
from imageconductor.training.config import TrainingConfig
from imageconductor.training.trainer import TrainingTask

#: Frames taken from each clip per micro-batch.
FRAMES_PER_CLIP = 4


class AutoencoderObjective(nn.Module):
    """The VAE's training forward as one module (so DDP wraps it): ``(images, noise) → (recon, kl)``."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor, noise_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        distribution = self.vae.encode(images).latent_dist
        generator = torch.Generator().manual_seed(noise_seed)
        noise = torch.randn(distribution.mean.shape, generator=generator).to(distribution.mean)
        reconstruction = self.vae.decode(distribution.mean + distribution.std * noise).sample
        kl = distribution.kl().mean() / distribution.mean[0].numel()
        return reconstruction, kl


class VaeTrainingTask(TrainingTask):
    """Trains ``components.vae`` only."""

    def __init__(
        self, config: TrainingConfig, components: ImageToVideoComponents, calibration_batches: list
    ) -> None:
        self.config = config
        self.components = components
        self.vae = components.vae
        for _, model in self._frozen():
            model.requires_grad_(False)
        self.vae.requires_grad_(True)
        self.vae.train()
        self.objective = AutoencoderObjective(self.vae)
        self.calibration_batches = calibration_batches

    def _frozen(self) -> list[tuple[str, nn.Module]]:
        names = ("text_encoder", "unet", "image_controlnet", "flow_controlnet")
        return [(name, getattr(self.components, name)) for name in names]

    def networks(self) -> dict[str, nn.Module]:
        return {"vae": self.objective}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.vae.parameters())

    def use_prepared(self, prepared: dict[str, nn.Module], accelerator: Accelerator) -> None:
        self.accelerator = accelerator
        self.wrapped_objective = prepared["vae"]

    def enable_gradient_checkpointing(self) -> None:
        self.vae.enable_gradient_checkpointing()

    def compute_losses(self, batch: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
        frames = normalize_batch(batch).frames
        generator = torch.Generator().manual_seed(seed)
        batch_size, _, num_frames = frames.shape[:3]
        picks = torch.stack(
            [torch.randperm(num_frames, generator=generator)[:FRAMES_PER_CLIP] for _ in range(batch_size)]
        )
        images = torch.stack([frames[row, :, picks[row]] for row in range(batch_size)])  # (B, 3, k, H, W)
        images = images.transpose(1, 2).flatten(0, 1).to(self.accelerator.device)
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        reconstruction, kl = self.wrapped_objective(images, noise_seed)
        squared = (reconstruction.float() - images.float()) ** 2
        sprite_weight = self.config.loss.vae_sprite_weight
        if sprite_weight > 0:
            if "sprite_mask" not in batch:
                raise KeyError("loss.vae_sprite_weight > 0 needs batches with 'sprite_mask' (synthetic data)")
            masks = batch["sprite_mask"]  # (B, F, H, W)
            masks = torch.stack([masks[row, picks[row]] for row in range(batch_size)]).flatten(0, 1)
            weights = 1.0 + sprite_weight * masks[:, None].to(squared)  # (B·k, 1, H, W)
            recon = (squared * weights).sum() / (weights.sum() * squared.shape[1])
        else:
            recon = squared.mean()
        return {"loss": recon + self.config.model.base.vae_kl_weight * kl, "reconstruction": recon, "kl": kl}

    @torch.no_grad()
    def calibrated_scaling_factor(self) -> float:
        """``1 / std`` of the unscaled posterior means over the calibration clips."""
        values = []
        for batch in self.calibration_batches:
            frames = normalize_batch(batch).frames
            flat = frames.transpose(1, 2).flatten(0, 1).to(self.vae.device, self.vae.dtype)
            values.append(self.vae.encode(flat).latent_dist.mean.float().flatten())
        std = torch.cat(values).std().item()
        if not std > 0:
            raise FloatingPointError(f"cannot calibrate the VAE scaling factor: latent std is {std}")
        return 1.0 / std

    def export(self, directory: Path, accelerator: Accelerator) -> None:
        self.vae.eval()
        self.vae.register_to_config(scaling_factor=self.calibrated_scaling_factor())
        save_components(self.components, directory)
