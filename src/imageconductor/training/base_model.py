"""Stage 0 of the embedded default: a SMALL image-to-video model built from scratch.

Same classes as the real model (so `ImageConductorPipeline` loads it unchanged):

- `AutoencoderKL` (downsampling by 8 like SD's with four levels, by 4 with three; few channels);
- `CLIPTextModel` with our own `CLIPTokenizer` (BPE merges learned from synthetic-world captions,
  `training.tokenizer`);
- ``ImageConductorUNetModel`` (diffusers ``UNetMotionModel`` in the AnimateDiff-v3 layout: motion modules in
  every down/up level, none in the mid block) and two ``ImageConductorControlNetModel`` (SparseCtrl-RGB image
  net with mask channel; flow net fed the pixel-unshuffled flow), their configs derived from an SD1.5-form UNet
  config exactly as the model helper derives them for the released weights
  (`imageconductor.models.convert_official.unet_config` / ``controlnet_config``);
- the released DDIM scheduler settings.

The networks are randomly initialised here; stages "vae" and "base" train them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from imageconductor.models.controlnets import ImageConductorControlNetModel
from imageconductor.models.convert_official import MotionLayout, controlnet_config, unet_config
from imageconductor.models.unet import ImageConductorUNetModel
from imageconductor.models.vae import vae_scale_factor
from imageconductor.pipelines.image_conductor import ImageConductorPipeline
from imageconductor.synthetic import random_clip_spec
from imageconductor.training.config import BaseModelConfig
from imageconductor.training.tokenizer import build_caption_tokenizer
from imageconductor.trajectories import RELEASED_FLOW_ENCODING, FlowEncoding

#: Flow channels before the pixel-unshuffle.
FLOW_CHANNELS = 2


@dataclass
class ImageToVideoComponents:
    """The seven pipeline components (names as in ``ImageConductorPipeline.__init__``)."""

    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    unet: ImageConductorUNetModel
    image_controlnet: ImageConductorControlNetModel
    flow_controlnet: ImageConductorControlNetModel
    scheduler: DDIMScheduler
    #: how tracks are blurred into the flow ControlNet's condition (the pipeline's ``flow_encoding``)
    flow_encoding: FlowEncoding = RELEASED_FLOW_ENCODING

    def as_dict(self) -> dict:
        """The pipeline's ``__init__`` arguments."""
        return {**self.__dict__, "flow_encoding": self.flow_encoding.as_kwargs()}


def released_scheduler() -> DDIMScheduler:
    """DDIM with the released sampling settings (linear betas 0.00085→0.012, steps_offset 1, no clipping)."""
    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="linear", steps_offset=1, clip_sample=False
    )


def base_scheduler(config: BaseModelConfig) -> DDIMScheduler:
    """The scheduler of a from-scratch model: the released DDIM settings, with the parametrisation of
    ``config`` (``prediction_type``; ``zero_terminal_snr`` rescales the betas so the last step is pure
    noise and samples from the last timestep — the model must then draw the whole video from its
    conditions, which is what a small model trained for minutes learns first with ``v_prediction``)."""
    scheduler = released_scheduler()
    overrides: dict = {"prediction_type": config.prediction_type}
    if config.zero_terminal_snr:
        overrides.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    return DDIMScheduler.from_config(scheduler.config, **overrides)


def sd_unet_config(config: BaseModelConfig) -> dict:
    """An SD1.5-form UNet config at our small size: cross-attention in every level but the last."""
    levels = len(config.block_out_channels)
    if levels < 2:
        raise ValueError("the base model needs at least two UNet levels")
    heads = [max(1, channels // config.attention_head_dim) for channels in config.block_out_channels]
    heads[-1] = 8  # the released ControlNets' mid block has 8 heads (see convert_official)
    return {
        "down_block_types": ["CrossAttnDownBlock2D"] * (levels - 1) + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (levels - 1),
        "block_out_channels": list(config.block_out_channels),
        "layers_per_block": config.layers_per_block,
        "norm_num_groups": config.norm_num_groups,
        "cross_attention_dim": config.cross_attention_dim,
        "attention_head_dim": heads,
        "in_channels": config.vae_latent_channels,
        "out_channels": config.vae_latent_channels,
    }


def build_unet(config: BaseModelConfig) -> ImageConductorUNetModel:
    layout = MotionLayout(config.motion_max_seq_length, 1, True, False)
    settings = unet_config(sd_unet_config(config), layout)
    settings["motion_num_attention_heads"] = config.motion_num_attention_heads
    return ImageConductorUNetModel(**settings)


def build_controlnet(config: BaseModelConfig, kind: str) -> ImageConductorControlNetModel:
    """``kind="image"``: SparseCtrl-RGB (the VAE's latent channels + mask); ``"flow"``: 2·r·r unshuffled flow
    channels, r the VAE's downsampling (8 as released)."""
    if kind not in ("image", "flow"):
        raise ValueError(f"kind must be 'image' or 'flow', got {kind!r}")
    layout = MotionLayout(config.motion_max_seq_length, 1, False, False)
    if kind == "image":
        settings = controlnet_config(
            sd_unet_config(config), layout, config.vae_latent_channels, concat_conditioning_mask=True
        )
    else:
        factor = vae_downsample_factor(config)
        channels = FLOW_CHANNELS * factor * factor
        settings = controlnet_config(sd_unet_config(config), layout, channels, concat_conditioning_mask=False)
    settings["motion_num_attention_heads"] = config.motion_num_attention_heads
    return ImageConductorControlNetModel(**settings)


def vae_norm_groups(config: BaseModelConfig) -> int:
    """GroupNorm groups of the VAE: ``config.vae_norm_num_groups`` or min(32, narrowest level)."""
    groups = config.vae_norm_num_groups
    if groups is None:
        groups = min(32, min(config.vae_block_out_channels))
    if groups < 1 or any(channels % groups for channels in config.vae_block_out_channels):
        raise ValueError(f"vae_norm_num_groups={groups} must be >= 1 and divide every VAE level's channels")
    return groups


def vae_downsample_factor(config: BaseModelConfig) -> int:
    """Pixels per latent cell along each side: 8 with four levels (SD's), 4 with three; other level counts
    are refused."""
    levels = len(config.vae_block_out_channels)
    if levels not in (3, 4):
        raise ValueError(
            f"vae_block_out_channels needs 4 levels (downsampling by 8, as SD's) or 3 (by 4), got {levels}"
        )
    return vae_scale_factor(config.vae_block_out_channels)


def build_vae(config: BaseModelConfig) -> AutoencoderKL:
    """A small KL autoencoder that downsamples by 8 (four levels, as SD's) or by 4 (three levels)."""
    vae_downsample_factor(config)  # refuses level counts other than 3 and 4
    levels = len(config.vae_block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
        block_out_channels=list(config.vae_block_out_channels),
        layers_per_block=1,
        latent_channels=config.vae_latent_channels,
        norm_num_groups=vae_norm_groups(config),
        scaling_factor=0.18215,
    )


def build_text_encoder(config: BaseModelConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A small CLIP text transformer sized to ``tokenizer``'s vocabulary (hidden = cross-attention dim)."""
    if config.text_hidden_size != config.cross_attention_dim:
        raise ValueError(
            f"text_hidden_size ({config.text_hidden_size}) must equal cross_attention_dim "
            f"({config.cross_attention_dim}): the UNet attends to the text encoder's hidden states"
        )
    end_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden_size,
        intermediate_size=4 * config.text_hidden_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        max_position_embeddings=config.text_max_length,
        bos_token_id=tokenizer.convert_tokens_to_ids(tokenizer.bos_token),
        eos_token_id=end_id,
        pad_token_id=end_id,
        projection_dim=config.text_hidden_size,
    )
    return CLIPTextModel(text_config)


def synthetic_captions(count: int = 3000, seed: int = 0) -> list[str]:
    """Captions of ``count`` random synthetic-world clip specs (no rendering): the tokenizer corpus."""

    return [random_clip_spec(seed * 1_000_003 + index, num_frames=16).caption for index in range(count)]


def build_base_components(
    config: BaseModelConfig, seed: int = 0, captions: list[str] | None = None
) -> ImageToVideoComponents:
    """Every component, randomly initialised from ``seed`` (same seed → identical weights)."""
    tokenizer = build_caption_tokenizer(
        captions if captions is not None else synthetic_captions(seed=seed), max_length=config.text_max_length
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        components = ImageToVideoComponents(
            vae=build_vae(config),
            text_encoder=build_text_encoder(config, tokenizer),
            tokenizer=tokenizer,
            unet=build_unet(config),
            image_controlnet=build_controlnet(config, "image"),
            flow_controlnet=build_controlnet(config, "flow"),
            scheduler=base_scheduler(config),
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return components


def save_components(components: ImageToVideoComponents, directory: str | Path) -> Path:
    """Write a pipeline folder (``model_index.json`` + one sub-folder per component, safetensors)."""

    pipeline = ImageConductorPipeline(**components.as_dict())
    pipeline.save_pretrained(str(directory), safe_serialization=True)
    return Path(directory)


#: The class that reads each component sub-folder of a pipeline folder.
COMPONENT_CLASSES = {
    "vae": AutoencoderKL,
    "text_encoder": CLIPTextModel,
    "tokenizer": CLIPTokenizer,
    "unet": ImageConductorUNetModel,
    "image_controlnet": ImageConductorControlNetModel,
    "flow_controlnet": ImageConductorControlNetModel,
    "scheduler": DDIMScheduler,
}


def load_components(directory: str | Path) -> ImageToVideoComponents:
    """Read a pipeline folder written by `save_components` (``ImageConductorPipeline.save_pretrained``).

    Each sub-folder is read with its class's ``from_pretrained`` (adapters of the flow ControlNet included);
    the flow encoding comes from ``model_index.json``.
    """
    directory = Path(directory)
    if not (directory / "model_index.json").is_file():
        raise FileNotFoundError(f"{directory} is not a model folder (no model_index.json)")
    missing = [name for name in COMPONENT_CLASSES if not (directory / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"model folder {directory} lacks component folder(s): {missing}")
    loaded = {name: cls.from_pretrained(str(directory / name)) for name, cls in COMPONENT_CLASSES.items()}
    index = json.loads((directory / "model_index.json").read_text())
    return ImageToVideoComponents(**loaded, flow_encoding=FlowEncoding.from_dict(index.get("flow_encoding")))
