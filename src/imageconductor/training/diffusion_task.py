"""The image-to-video diffusion training task of stages "base", "controlnet", "camera" and "object".

One micro-batch (paper Eq. 1 / 3): encode the clip with the frozen VAE, noise it at a random timestep,
predict the noise as `imageconductor.models.predict_noise` does (image ControlNet on the first-frame
latents, flow ControlNet on the trajectory condition with the stage's adapters, UNet), regress the noise. The
object stage adds the orthogonal loss (Eq. 4) between the camera and object LoRA factors.

The trained networks (and the text encoder in stage "base") sit inside one `DenoisingModel` so that
accelerate / DDP wraps a single module whose ``forward`` is the whole noise prediction.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler
from torch import nn

from imageconductor.conditioning import image_condition
from imageconductor.models.lora import ADAPTER_WEIGHT_NAME, ADAPTERS_SUBFOLDER, adapter_names
from imageconductor.training.adapters import add_training_adapter
from imageconductor.training.base_model import ImageToVideoComponents, save_components
from imageconductor.training.conditions import TrainingBatch, curriculum_flow_condition, normalize_batch
from imageconductor.training.config import TrainingConfig
from imageconductor.training.losses import diffusion_loss, orthogonal_loss
from imageconductor.training.sampling import write_stage_samples
from imageconductor.training.stages import (
    CAMERA_ADAPTER,
    OBJECT_ADAPTER,
    STAGE_ACTIVE_ADAPTERS,
    StageModels,
    activate_adapters,
    apply_stage_freezing,
    trainable_parameter_names,
)
from imageconductor.training.trainer import TrainingTask

logger = logging.getLogger(__name__)

#: The flow-ControlNet adapters of each stage's forward pass, as `predict_noise`'s ``adapters`` would say it.
STAGE_ADAPTER_CHOICE: dict[str, str | dict[str, float] | None] = {
    "base": None,
    "controlnet": "none",
    "camera": CAMERA_ADAPTER,
    "object": {CAMERA_ADAPTER: 1.0, OBJECT_ADAPTER: 1.0},  # θ0 + sg[Δθ_cam] + Δθ_obj (Eq. 2)
}


#: random streams of the micro-batch seed for its per-clip dropout draws
_CAPTION_DROP_STREAM = 1
_FLOW_DROP_STREAM = 2


def _dropped_rows(seed: int, stream: int, count: int, probability: float) -> np.ndarray:
    """Which of ``count`` clips a dropout of ``probability`` drops, drawn from ``(seed, stream)``."""
    return np.random.default_rng([seed, stream]).random(count) < probability


class DenoisingModel(nn.Module):
    """Text encoder + image ControlNet + flow ControlNet + UNet as one module: ``forward`` = ε prediction.

    The same computation as `imageconductor.models.predict_noise` for a batch whose rows share one adapter
    choice (a test checks the two agree), except that the flow ControlNet runs with whatever adapters are
    active: the task sets them once per stage (`training.stages.activate_adapters`, which keeps the camera
    LoRA frozen). ``predict_noise`` switches adapters inside every call, and peft's switch turns gradients
    back on for every activated adapter; with gradient checkpointing the backward recomputation would then
    see another adapter state than the forward did.
    """

    def __init__(
        self,
        text_encoder: nn.Module,
        unet: nn.Module,
        image_controlnet: nn.Module,
        flow_controlnet: nn.Module | None,
    ) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.unet = unet
        self.image_controlnet = image_controlnet
        self.flow_controlnet = flow_controlnet

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        input_ids: torch.Tensor,
        image_cond: torch.Tensor,
        flow_cond: torch.Tensor | None,
        flow_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``flow_keep`` (B,): 1 where a clip gets the flow ControlNet's residuals, 0 where they are dropped
        (the same prediction as without the flow ControlNet for that clip)."""
        num_frames = noisy_latents.shape[2]
        text = self.text_encoder(input_ids)[0].repeat_interleave(num_frames, dim=0)
        down, mid = self.image_controlnet(
            noisy_latents,
            timesteps,
            encoder_hidden_states=text,
            controlnet_cond=image_cond[:, :-1],
            conditioning_mask=image_cond[:, -1:],
            conditioning_scale=1.0,
            return_dict=False,
        )
        if self.flow_controlnet is not None and flow_cond is not None:
            flow_down, flow_mid = self.flow_controlnet(
                noisy_latents,
                timesteps,
                encoder_hidden_states=text,
                controlnet_cond=flow_cond,
                conditioning_mask=None,
                conditioning_scale=1.0,
                return_dict=False,
            )
            if flow_keep is not None:
                keep = flow_keep.to(flow_mid.dtype).repeat_interleave(num_frames)[:, None, None, None]
                flow_down = [residual * keep for residual in flow_down]
                flow_mid = flow_mid * keep
            down = [image + flow for image, flow in zip(down, flow_down, strict=True)]
            mid = mid + flow_mid
        return self.unet(
            noisy_latents,
            timesteps,
            encoder_hidden_states=text,
            down_block_additional_residuals=list(down),
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]


def prepare_stage_adapters(components: ImageToVideoComponents, config: TrainingConfig) -> None:
    """Give the flow ControlNet the adapters the stage needs (fresh ones where missing, loaded where given)."""
    stage, flow = config.stage, components.flow_controlnet
    rank, alpha = config.model.lora_rank, config.model.lora_alpha
    if config.model.camera_lora_path:
        _load_adapter(flow, CAMERA_ADAPTER, config.model.camera_lora_path)
    if config.model.object_lora_path:
        _load_adapter(flow, OBJECT_ADAPTER, config.model.object_lora_path)
    present = adapter_names(flow)
    fresh = None
    if stage == "camera" and CAMERA_ADAPTER not in present:
        fresh = CAMERA_ADAPTER
    if stage == "object":
        if CAMERA_ADAPTER not in present:
            raise ValueError(
                "stage 'object' needs the trained camera LoRA: the model's flow ControlNet has no 'camera' "
                "adapter and model.camera_lora_path is not set"
            )
        if OBJECT_ADAPTER not in present:
            fresh = OBJECT_ADAPTER
    if fresh is not None:
        # Reproducible Gaussian init, and a different draw per adapter (identical camera/object down-projections
        # would start the two adapters in the same subspace).
        seed = int(np.random.SeedSequence([config.seed, *fresh.encode()]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            add_training_adapter(flow, fresh, rank, alpha)


def _load_adapter(flow: nn.Module, name: str, path: str | Path) -> None:

    path = Path(path)
    candidates = [
        path,
        path / ADAPTERS_SUBFOLDER / name,
        path / "flow_controlnet" / ADAPTERS_SUBFOLDER / name,
    ]
    folder = next((c for c in candidates if (c / ADAPTER_WEIGHT_NAME).is_file()), None)
    if folder is None:
        raise FileNotFoundError(f"no {ADAPTER_WEIGHT_NAME} for adapter {name!r} under {path}")
    if name in adapter_names(flow):
        flow.delete_adapters(name)
    flow.load_lora_adapter(str(folder), weight_name=ADAPTER_WEIGHT_NAME, adapter_name=name, prefix=None)


class DiffusionTrainingTask(TrainingTask):
    """Stages "base", "controlnet", "camera", "object" (see `training.stages` for what trains)."""

    def __init__(self, config: TrainingConfig, components: ImageToVideoComponents) -> None:
        if config.stage not in STAGE_ADAPTER_CHOICE:
            raise ValueError(f"DiffusionTrainingTask does not train stage {config.stage!r}")
        self.config = config
        self.components = components
        self.stage = config.stage
        self.train_text_encoder = config.stage == "base" and config.model.base.train_text_encoder
        self.base_trains_flow = config.stage == "base" and config.model.base.train_flow_controlnet
        prepare_stage_adapters(components, config)
        self.uses_flow = config.stage != "base" or self.base_trains_flow
        self.models = StageModels(
            unet=components.unet,
            image_controlnet=components.image_controlnet,
            flow_controlnet=components.flow_controlnet if self.uses_flow else None,
            text_encoder=components.text_encoder,
            vae=components.vae,
        )
        if self.uses_flow and adapter_names(components.flow_controlnet):
            activate_adapters(
                components.flow_controlnet,
                STAGE_ACTIVE_ADAPTERS[config.stage],
                config.stage,
                self.models,
                self.train_text_encoder,
                self.base_trains_flow,
            )
        self._trainable = apply_stage_freezing(
            config.stage, self.models, self.train_text_encoder, self.base_trains_flow
        )
        for _, model in self.models.named_models():
            model.train(any(p.requires_grad for p in model.parameters()))
        self.denoiser = DenoisingModel(
            components.text_encoder,
            components.unet,
            components.image_controlnet,
            components.flow_controlnet if self.uses_flow else None,
        )
        self.noise_scheduler = DDPMScheduler.from_config(components.scheduler.config)
        self.step = 0
        logger.info(
            "stage %s: %d trainable tensors (%d parameters)",
            self.stage,
            len(self._trainable),
            sum(p.numel() for p in self._trainable),
        )

    # ---- TrainingTask --------------------------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        return {"denoiser": self.denoiser, "vae": self.components.vae}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self._trainable)

    def trainable_names(self) -> list[str]:
        return trainable_parameter_names(self.models)

    def use_prepared(self, prepared: dict[str, nn.Module], accelerator: Accelerator) -> None:
        self.accelerator = accelerator
        self.wrapped_denoiser = prepared.get("denoiser", self.denoiser)
        # Frozen networks may run in the mixed-precision dtype (trainable ones stay float32).
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision)
        if dtype is not None:
            for _, model in self.models.named_models():
                if not any(p.requires_grad for p in model.parameters()):
                    nn.Module.to(model, dtype)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in backward: trained networks, and the UNet (back-propagated through)."""
        for name, model in self.models.named_models():
            if name != "unet" and not any(p.requires_grad for p in model.parameters()):
                continue
            if hasattr(model, "enable_gradient_checkpointing"):
                model.enable_gradient_checkpointing()
            elif hasattr(model, "gradient_checkpointing_enable"):
                model.gradient_checkpointing_enable()

    def on_step(self, step: int) -> None:
        self.step = step

    def compute_losses(self, batch: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
        data = normalize_batch(batch)
        device = self._device()
        generator = torch.Generator().manual_seed(seed)
        latents = self.encode_frames(data.frames.to(device), generator)
        batch_size, _, num_frames = latents.shape[:3]
        noise = torch.randn(latents.shape, generator=generator).to(device)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator
        ).to(device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        input_ids = self.tokenize(self._drop_captions(data, seed)).to(device)
        image_cond = image_condition(latents[:, :, :1], num_frames)
        flow_cond = flow_keep = None
        if self.uses_flow:
            flow_cond = curriculum_flow_condition(
                data, self.step, seed, self.config.data.curriculum, self.components.flow_encoding
            ).to(device)
            flow_keep = self._flow_keep(data, seed)
        prediction = self.wrapped_denoiser(noisy, timesteps, input_ids, image_cond, flow_cond, flow_keep)
        target = noise
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        terms = {"diffusion": diffusion_loss(prediction, target)}
        total = terms["diffusion"]
        if self.stage == "object" and self.config.loss.ortho_weight > 0:
            terms["ortho"] = orthogonal_loss(
                self.components.flow_controlnet,
                CAMERA_ADAPTER,
                OBJECT_ADAPTER,
                form=self.config.loss.ortho_form,
                factor=self.config.loss.ortho_factor,
            )
            total = total + self.config.loss.ortho_weight * terms["ortho"]
        terms["loss"] = total
        return terms

    def export(self, directory: Path, accelerator: Accelerator) -> None:
        """A complete pipeline folder (model_index.json, all components; adapters as safetensors), float32."""
        for name in ("vae", "text_encoder", "unet", "image_controlnet", "flow_controlnet"):
            model = getattr(self.components, name)
            if any(p.dtype != torch.float32 for p in model.parameters()):
                nn.Module.to(model, torch.float32)  # plain cast: frozen nets ran in the mixed-precision dtype
        save_components(self.components, directory)

    def sample(self, directory: Path, step: int, accelerator: Accelerator) -> list[Path]:
        return write_stage_samples(self.config, self.components, self.models, directory)

    # ---- pieces ------------------------------------------------------------------------------------------

    def _device(self) -> torch.device:
        accelerator = getattr(self, "accelerator", None)
        return accelerator.device if accelerator is not None else torch.device("cpu")

    @torch.no_grad()
    def encode_frames(
        self, frames: torch.Tensor, generator: torch.Generator, chunk: int = 16
    ) -> torch.Tensor:
        """``(B, 3, F, H, W)`` in [-1, 1] → scaled VAE latents ``(B, c, F, h, w)`` (posterior samples)."""
        vae = self.components.vae
        batch, _, num_frames = frames.shape[:3]
        flat = frames.transpose(1, 2).flatten(0, 1).to(vae.dtype)
        parts = []
        for start in range(0, flat.shape[0], chunk):
            posterior = vae.encode(flat[start : start + chunk]).latent_dist
            noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
            parts.append(posterior.mean + posterior.std * noise)
        latents = torch.cat(parts).float() * vae.config.scaling_factor
        return latents.reshape(batch, num_frames, *latents.shape[1:]).transpose(1, 2)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        tokenizer = self.components.tokenizer
        return tokenizer(
            captions,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    def _flow_keep(self, data: TrainingBatch, seed: int) -> torch.Tensor | None:
        """0 for the clips that train without the flow ControlNet (``data.flow_dropout``, which the config
        allows only in a base stage that trains it), 1 for the others; None when none is dropped."""
        probability = self.config.data.flow_dropout
        if probability <= 0:
            return None
        dropped = _dropped_rows(seed, _FLOW_DROP_STREAM, data.size, probability)
        return torch.from_numpy(~dropped).float().to(self._device())

    def _drop_captions(self, data: TrainingBatch, seed: int) -> list[str]:
        probability = self.config.data.caption_dropout
        if probability <= 0:
            return data.captions
        dropped = _dropped_rows(seed, _CAPTION_DROP_STREAM, data.size, probability)
        return ["" if drop else caption for caption, drop in zip(data.captions, dropped, strict=True)]
