"""Image Conductor networks on diffusers + peft: video UNet, image and flow ControlNets, official loaders."""

from __future__ import annotations

from imageconductor.models.components import (
    OFFICIAL_SCHEDULER_CONFIG,
    OfficialComponents,
    load_official_components,
    official_scheduler,
)
from imageconductor.models.controlnets import ImageConductorControlNetModel
from imageconductor.models.convert_official import (
    CheckpointError,
    CheckpointKeyError,
    load_official_flow_controlnet,
    load_official_image_controlnet,
    load_official_unet,
    read_checkpoint,
)
from imageconductor.models.lora import adapters_per_row, adapters_weighted
from imageconductor.models.motion_norm import PerFrameGroupNorm
from imageconductor.models.noise import predict_noise
from imageconductor.models.personalize import load_personalized_checkpoint, merge_personalized_lora
from imageconductor.models.unet import ImageConductorUNetModel
from imageconductor.models.vae import vae_scale_factor

__all__ = [
    "vae_scale_factor",
    "OFFICIAL_SCHEDULER_CONFIG",
    "CheckpointError",
    "CheckpointKeyError",
    "ImageConductorControlNetModel",
    "ImageConductorUNetModel",
    "OfficialComponents",
    "PerFrameGroupNorm",
    "adapters_per_row",
    "adapters_weighted",
    "load_official_components",
    "load_official_flow_controlnet",
    "load_official_image_controlnet",
    "load_official_unet",
    "load_personalized_checkpoint",
    "merge_personalized_lora",
    "official_scheduler",
    "predict_noise",
    "read_checkpoint",
]
