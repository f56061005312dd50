"""Everything the released Image Conductor model needs, loaded from an SD1.5 folder and the released files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler
from transformers import CLIPTextModel, CLIPTokenizer

from imageconductor.models.controlnets import ImageConductorControlNetModel
from imageconductor.models.convert_official import (
    load_official_flow_controlnet,
    load_official_image_controlnet,
    load_official_unet,
)
from imageconductor.models.unet import ImageConductorUNetModel

#: The released sampler: DDIM with these settings and diffusers' defaults otherwise.
OFFICIAL_SCHEDULER_CONFIG: dict[str, object] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "steps_offset": 1,
    "clip_sample": False,
}


@dataclass
class OfficialComponents:
    """The models of the released Image Conductor, ready for inference (eval mode, gradients off)."""

    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    unet: ImageConductorUNetModel
    image_controlnet: ImageConductorControlNetModel
    flow_controlnet: ImageConductorControlNetModel


def official_scheduler() -> DDIMScheduler:
    """``DDIMScheduler`` with the released configuration (not the SD folder's scheduler config)."""
    return DDIMScheduler(**OFFICIAL_SCHEDULER_CONFIG)


def _require_folder(path: Path, sub: str) -> None:
    if not (path / sub).is_dir():
        raise FileNotFoundError(f"SD1.5 folder {path} has no '{sub}/' sub-folder")


def load_official_components(
    pretrained_model_path: str | Path,
    unet_path: str | Path,
    image_controlnet_path: str | Path,
    flow_controlnet_path: str | Path,
    torch_dtype: torch.dtype = torch.float32,
) -> OfficialComponents:
    """Load the released model: SD1.5 diffusers folder + ``unet.ckpt`` + ``image_controlnet.ckpt`` +
    ``flow_controlnet.ckpt``. Nothing is downloaded; pickled files are read weights-only.

    Args:
        pretrained_model_path: SD1.5 diffusers folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``).
        unet_path: the released video UNet (SD layers + motion modules, AnimateDiff key names).
        image_controlnet_path: the SparseCtrl-RGB image ControlNet.
        flow_controlnet_path: the flow ControlNet with LoRA adapters ``omcm_weights`` / ``cmcm_weights``,
            loaded as adapters ``"object"`` / ``"camera"``.
        torch_dtype: dtype every model runs in (weights stored as float16 are converted).

    Raises:
        FileNotFoundError: a folder or file is missing.
        imageconductor.models.CheckpointKeyError: a file's keys do not fit (lists missing / unexpected keys).
        imageconductor.models.CheckpointError: a file is unreadable or its shapes do not fit.
    """
    folder = Path(pretrained_model_path)
    for sub in ("unet", "vae", "text_encoder", "tokenizer"):
        _require_folder(folder, sub)
    components = OfficialComponents(
        vae=AutoencoderKL.from_pretrained(
            folder, subfolder="vae", local_files_only=True, torch_dtype=torch_dtype
        ),
        text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", local_files_only=True),
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True),
        scheduler=official_scheduler(),
        unet=load_official_unet(folder, unet_path, torch_dtype),
        image_controlnet=load_official_image_controlnet(folder, image_controlnet_path, torch_dtype),
        flow_controlnet=load_official_flow_controlnet(folder, flow_controlnet_path, torch_dtype),
    )
    for model in (
        components.vae,
        components.text_encoder,
        components.unet,
        components.image_controlnet,
        components.flow_controlnet,
    ):
        model.requires_grad_(False)
        model.eval()
    components.text_encoder.to(torch_dtype)
    return components
