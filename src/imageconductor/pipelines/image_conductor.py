"""ImageConductorPipeline: first frame + prompt + trajectories -> video, with CFG and camera-free guidance.

The whole sampling loop lives in :meth:`ImageConductorPipeline.__call__`. Per step it makes ONE
batched call of :func:`imageconductor.models.predict_noise` over the guidance rows of
:mod:`imageconductor.guidance` (each row picks its text embedding and its motion-ControlNet adapter),
combines the rows into one noise prediction and takes a scheduler step (DDIM unless another scheduler is
named, see `imageconductor.pipelines.schedulers`). With ``camera_free_guidance=None`` and DDIM it is
numerically the authors' released sampler (classifier-free guidance over ``[negative, positive]`` rows
that keep the image and flow conditions; only the text differs).
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiffusionPipeline, ModelMixin, SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from imageconductor.conditioning import image_condition
from imageconductor.guidance import AdapterSelection, normalize_mode, plan_guidance
from imageconductor.models import load_official_components, predict_noise, vae_scale_factor
from imageconductor.models.adapter_fusion import FOLD_MIN_ADAPTER_SHARE, adapter_fusion, adapter_share
from imageconductor.models.adapters_personal import (
    DEFAULT_LORA_SCALE,
    fuse_loras,
    load_lora,
    lora_scales,
    remove_lora,
    set_lora_scales,
)
from imageconductor.models.personalize import load_personalized_checkpoint
from imageconductor.pipelines.hub import (
    PERSONALIZED_FILES,
    RELEASED_REPO_ID,
    SD15_REPO_ID,
    fetch_official_files,
    fetch_personalized_file,
)
from imageconductor.pipelines.schedulers import (
    SCHEDULERS,
    check_scheduler,
    make_scheduler,
    max_inference_steps,
)
from imageconductor.pipelines.settings import (
    MODEL_SETTING_NAMES,
    VideoSize,
    check_sampling_numbers,
    check_video_size,
    read_model_index,
)
from imageconductor.trajectories import FlowEncoding, TrajectorySet, flow_condition, load_trajectories

__all__ = [
    "ImageConductorPipeline",
    "ImageConductorPipelineOutput",
    "center_crop_resize",
    "PromptTruncatedWarning",
    "load_trajectory_set",
    "output_to_uint8",
    "prepare_first_frame",
]

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor
PathLike = str | os.PathLike


class PromptTruncatedWarning(UserWarning):
    """A prompt is longer than the text encoder reads (77 CLIP tokens); the rest of it is ignored."""


@dataclass
class ImageConductorPipelineOutput(BaseOutput):
    """``frames``: ``"pt"`` (B, 3, F, H, W) in [0, 1]; ``"np"`` (B, F, H, W, 3) float32 in [0, 1];
    ``"pil"`` a list (per video) of lists of PIL images; ``"latent"`` the final latents (B, 4, F, h, w)."""

    frames: torch.Tensor | np.ndarray | list[list[PIL.Image.Image]]


def _center_crop_box(in_width: int, in_height: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Largest centred box of ``in_width x in_height`` with the aspect ratio ``width / height``.

    This is what the released code's ``RandomResizedCrop(scale=(1, 1), ratio=(W/H, W/H))`` falls back to.
    """
    ratio = width / height
    in_ratio = in_width / in_height
    crop_width, crop_height = in_width, in_height
    if in_ratio < ratio:
        crop_height = int(round(in_width / ratio))
    elif in_ratio > ratio:
        crop_width = int(round(in_height * ratio))
    left, top = (in_width - crop_width) // 2, (in_height - crop_height) // 2
    return left, top, left + crop_width, top + crop_height


def center_crop_resize(image: PIL.Image.Image, height: int, width: int) -> PIL.Image.Image:
    """``image`` as RGB, centre-cropped to the aspect ratio ``width / height`` and resized to ``width x height``
    (bilinear): the model frame the pipeline encodes, pixel for pixel, for a PIL or uint8 first frame."""
    rgb = image.convert("RGB")
    rgb = rgb.crop(_center_crop_box(rgb.width, rgb.height, width, height))
    return rgb.resize((width, height), PIL.Image.BILINEAR)


def prepare_first_frame(image: ImageInput, height: int, width: int) -> torch.Tensor:
    """Centre-crop ``image`` to the aspect ratio ``width / height``, resize it and map it to [-1, 1].

    ``image``: a PIL image, a uint8 array (H, W, 3), a float array / tensor in [0, 1] shaped (H, W, 3),
    (3, H, W) or (1, 3, H, W). Returns a float32 tensor (1, 3, height, width).
    """
    if isinstance(image, PIL.Image.Image) or (isinstance(image, np.ndarray) and image.dtype == np.uint8):
        pil = image if isinstance(image, PIL.Image.Image) else _uint8_array_to_pil(image)
        pil = center_crop_resize(pil, height, width)
        pixels = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        return pixels * 2.0 - 1.0
    tensor = torch.as_tensor(image, dtype=torch.float32)
    if tensor.ndim == 3 and tensor.shape[-1] == 3 and tensor.shape[0] != 3:
        tensor = tensor.permute(2, 0, 1)
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise ValueError(f"image must be (H, W, 3), (3, H, W) or (1, 3, H, W), got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all() or tensor.min() < 0 or tensor.max() > 1:
        raise ValueError("a float image must hold finite values in [0, 1]")
    left, top, right, bottom = _center_crop_box(tensor.shape[-1], tensor.shape[-2], width, height)
    tensor = tensor[..., top:bottom, left:right]
    tensor = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return tensor.clamp(0, 1) * 2.0 - 1.0


def _uint8_array_to_pil(array: np.ndarray) -> PIL.Image.Image:
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
        return PIL.Image.fromarray(array)
    raise ValueError(f"a uint8 image array must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")


class ImageConductorPipeline(DiffusionPipeline):
    r"""Image-to-video generation with trajectory control (Image Conductor).

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` / ``tokenizer`` (CLIP), ``unet`` (video UNet
    with motion modules), ``image_controlnet`` (SparseCtrl-RGB on the first frame), ``flow_controlnet``
    (motion ControlNet with the LoRA adapters ``camera`` and ``object``), ``scheduler`` (DDIM; replace it
    as in diffusers, ``pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)``, with
    :meth:`use_scheduler` by name, or name one for a single call with ``scheduler=``). The
    optional ``flow_encoding`` (see `imageconductor.trajectories.FlowEncoding`, default: the released one)
    says how drawn tracks are blurred into the motion ControlNet's condition; ``native_size``
    (``{"num_frames", "height", "width"}``, default: the released 16 x 256 x 384) is the video size the
    model was trained for and renders by default; ``synthetic_world`` records the settings of the
    synthetic world a model was trained on (``texture_scale``, ``motion_scale``, ``seed``), which the
    evaluation on held-out synthetic clips reuses.

    Guidance (see :mod:`imageconductor.guidance`):

    * ``camera_free_guidance=None`` — the released behaviour: rows ``[negative, positive]`` with the
      ``mode`` adapter, ``eps = eps_neg + guidance_scale * (eps_pos - eps_neg)``.
    * ``camera_free_guidance=λ_traj`` — paper Eq. 5 with rows ``[∅/none, c/none, c/mode]``:
      ``eps = ε₀(∅) + λ_cfg (ε₀(c) − ε₀(∅)) + λ_traj (ε_traj(c) − ε₀(c))`` where θ₀ is the motion
      ControlNet without LoRA, θ_traj the one with the ``mode`` adapter (the object LoRA in the paper)
      and ∅ the same unconditional text the CFG uses: ``negative_prompt`` when given, otherwise the
      empty prompt "" (the paper's ∅). Image and trajectory conditions are kept in every row.
    * ``motion_guidance_scale=s`` (this project's addition; 1 = off) — one more row, the positive prompt
      with trajectory control off, and ``(s − 1) (ε_flow(c) − ε_off(c))`` added to either rule above.

    All rows of a step go through one batched ``predict_noise`` call; ``guidance_scale <= 1`` drops
    the unconditional row as the released code does.
    """

    model_cpu_offload_seq = "text_encoder->image_controlnet->flow_controlnet->unet->vae"
    _optional_components: list[str] = []
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]
    #: ``__init__`` arguments that are plain settings in ``model_index.json``, not components.
    _setting_names = MODEL_SETTING_NAMES

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: ModelMixin,
        image_controlnet: ModelMixin,
        flow_controlnet: ModelMixin,
        scheduler: SchedulerMixin,
        flow_encoding: dict[str, Any] | None = None,
        native_size: dict[str, int] | None = None,
        synthetic_world: dict[str, Any] | None = None,
    ):
        super().__init__()
        # Settings kept in model_index.json next to the components. flow_encoding: how this model's motion
        # ControlNet expects tracks to be blurred (None = the released encoding).
        encoding = FlowEncoding.from_dict(flow_encoding)
        size = VideoSize.native({"native_size": native_size})
        self.register_to_config(
            flow_encoding=None if encoding.is_official else encoding.as_kwargs(),
            native_size=None if native_size is None else size.as_dict(),
            synthetic_world=None if synthetic_world is None else dict(synthetic_world),
        )
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            image_controlnet=image_controlnet,
            flow_controlnet=flow_controlnet,
            scheduler=scheduler,
        )
        self.vae_scale_factor = vae_scale_factor(self.vae.config.block_out_channels)
        #: Fold the motion ControlNet's adapter into a copy of its weights while sampling
        #: (`folds_motion_adapters`): None decides by the adapters' share of the work, True always, False
        #: never (the LoRA layers run on every step and no copy is kept).
        self.fuse_motion_adapters: bool | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_official(
        cls,
        pretrained_model_path: PathLike,
        unet_path: PathLike,
        image_controlnet_path: PathLike,
        flow_controlnet_path: PathLike,
        torch_dtype: torch.dtype = torch.float32,
    ) -> ImageConductorPipeline:
        """Build the pipeline from the authors' released files.

        ``pretrained_model_path``: the Stable Diffusion 1.5 diffusers folder (vae, text_encoder,
        tokenizer, unet config, scheduler); ``unet_path`` / ``image_controlnet_path`` /
        ``flow_controlnet_path``: the ``unet.ckpt``, ``image_controlnet.ckpt`` and flow ControlNet ``.ckpt``
        files. Raises FileNotFoundError listing every missing path.
        """
        required = {
            "pretrained_model_path (Stable Diffusion 1.5 folder)": (pretrained_model_path, True),
            "unet_path": (unet_path, False),
            "image_controlnet_path": (image_controlnet_path, False),
            "flow_controlnet_path": (flow_controlnet_path, False),
        }
        missing = []
        for label, (path, is_dir) in required.items():
            candidate = Path(path)
            if not (candidate.is_dir() if is_dir else candidate.is_file()):
                missing.append(f"{label}: {candidate} ({'folder' if is_dir else 'file'} not found)")
        if missing:
            raise FileNotFoundError("official ImageConductor weights missing: " + "; ".join(missing))
        components = load_official_components(
            pretrained_model_path,
            unet_path=unet_path,
            image_controlnet_path=image_controlnet_path,
            flow_controlnet_path=flow_controlnet_path,
            torch_dtype=torch_dtype,
        )
        pipe = cls(**{field.name: getattr(components, field.name) for field in fields(components)})
        pipe._sd15_folder = Path(pretrained_model_path)
        return pipe

    @classmethod
    def from_hub(
        cls,
        repo_id: str = RELEASED_REPO_ID,
        base_model_id: str = SD15_REPO_ID,
        revision: str | None = None,
        cache_dir: PathLike | None = None,
        local_files_only: bool = False,
        torch_dtype: torch.dtype | None = None,
    ) -> ImageConductorPipeline:
        """The released model from the Hugging Face Hub, fetched once into the standard cache.

        Only the files the model needs are fetched (see `imageconductor.pipelines.hub`): the three released
        checkpoints of ``repo_id`` at ``revision`` and the configs, VAE, text encoder and tokenizer of
        ``base_model_id``; then :meth:`from_official` loads them. Offline (``local_files_only=True`` or
        ``HF_HUB_OFFLINE=1``) only the cache is read. Raises `imageconductor.pipelines.HubWeightsError`
        (one line naming the repository and what to do) when the files cannot be had.
        """
        files = fetch_official_files(repo_id, base_model_id, revision, cache_dir, local_files_only)
        pipe = cls.from_official(
            files.pretrained_model_path,
            unet_path=files.unet_path,
            image_controlnet_path=files.image_controlnet_path,
            flow_controlnet_path=files.flow_controlnet_path,
            torch_dtype=torch_dtype or torch.float32,
        )
        pipe._hub_source = {"repo_id": repo_id, "revision": revision, "cache_dir": cache_dir}
        return pipe

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: PathLike,
        torch_dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> ImageConductorPipeline:
        """Load a folder written by :meth:`save_pretrained` (diffusers layout, safetensors).

        Each component is loaded by the class ``model_index.json`` names (only ``diffusers``,
        ``transformers`` and ``imageconductor.*`` classes are imported), with that class's
        ``from_pretrained`` — which, for the flow ControlNet, restores its LoRA adapters; the
        ``flow_encoding`` setting is read from the same file. Components can be passed as keyword arguments
        instead. A path that is not a local folder goes to diffusers'
        ``DiffusionPipeline.from_pretrained`` unchanged.
        """
        folder = Path(pretrained_model_name_or_path)
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            if folder.exists():
                raise FileNotFoundError(
                    f"{folder} is not a saved ImageConductorPipeline (no model_index.json)"
                )
            return super().from_pretrained(pretrained_model_name_or_path, torch_dtype=torch_dtype, **kwargs)
        index = read_model_index(folder)
        components: dict[str, Any] = {}
        for name in inspect.signature(cls.__init__).parameters:
            if name == "self":
                continue
            if name in kwargs:
                components[name] = kwargs.pop(name)
                continue
            if name in cls._setting_names:
                components[name] = index.get(name)
                continue
            entry = index.get(name)
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not all(isinstance(item, str) for item in entry)
            ):
                raise ValueError(f"{index_path} does not describe the component {name!r}")
            library, class_name = entry
            if library not in ("diffusers", "transformers") and not library.startswith("imageconductor."):
                raise ValueError(f"{index_path}: refusing to import {name!r} from module {library!r}")
            component = getattr(importlib.import_module(library), class_name).from_pretrained(
                folder, subfolder=name
            )
            if torch_dtype is not None and isinstance(component, torch.nn.Module):
                component = component.to(dtype=torch_dtype)
            components[name] = component
        if kwargs:
            raise TypeError(f"unexpected keyword arguments for a local folder: {sorted(kwargs)}")
        pipe = cls(**components)
        pipe.register_to_config(_name_or_path=str(folder))
        return pipe

    # ------------------------------------------------------------------ schedulers
    def use_scheduler(self, name: str) -> SchedulerMixin:
        """Replace ``self.scheduler`` by the scheduler ``name`` (``"ddim"``, ``"dpm++2m"``, ``"unipc"``,
        ``"euler"``, ...; see `imageconductor.pipelines.schedulers.SCHEDULER_NAMES`) built from the model's
        scheduler config (see :meth:`scheduler_source_config`), keeping its noise schedule, prediction type
        and timestep spacing; returns it. ValueError for an unknown name or a combination that scheduler
        cannot sample. ``use_scheduler("ddim")`` after another name restores the model's DDIM exactly."""
        source = self.scheduler_source_config()
        self.scheduler = make_scheduler(name, source)
        self._named_scheduler = (self.scheduler, source)
        return self.scheduler

    def scheduler_source_config(self) -> Any:
        """The scheduler config that named schedulers are built from: while the scheduler that
        :meth:`use_scheduler` installed is in place, the config it was built from (the model's), else the
        current scheduler's (a scheduler set directly, diffusers' way, counts as the model's)."""
        named = getattr(self, "_named_scheduler", None)
        if named is not None and named[0] is self.scheduler:
            return named[1]
        return self.scheduler.config

    # ------------------------------------------------------------------ personalised weights
    def _personal_file(self, name_or_path: PathLike) -> Path:
        """A local file, or a released personalised model's name fetched from the Hub (see
        `imageconductor.pipelines.hub.PERSONALIZED_FILES`) into the cache ``from_hub`` used."""
        path = Path(name_or_path)
        if path.exists() or str(name_or_path) not in PERSONALIZED_FILES:
            return path
        return fetch_personalized_file(str(name_or_path), **getattr(self, "_hub_source", {}))

    def load_personalized(self, checkpoint: PathLike, sd15_folder: PathLike | None = None) -> None:
        """Replace the SD1.5 layers of the UNet (motion modules stay), the VAE and the text encoder by a
        DreamBooth single-file ``.safetensors`` checkpoint (or ``"helloobjects_V12c"`` from the Hub).

        ``sd15_folder``: the SD1.5 diffusers folder whose configs describe the checkpoint (default: the one
        ``from_official`` / ``from_hub`` loaded). Remove LoRAs first.
        """
        folder = sd15_folder or getattr(self, "_sd15_folder", None)
        if folder is None:
            raise ValueError(
                "load_personalized needs sd15_folder (the SD1.5 diffusers folder of its configs)"
            )
        load_personalized_checkpoint(
            self._personal_file(checkpoint), folder, self.unet, vae=self.vae, text_encoder=self.text_encoder
        )

    def load_lora(
        self, lora: PathLike, adapter_name: str | None = None, scale: float = DEFAULT_LORA_SCALE
    ) -> str:
        """Load a personalised LoRA (``.safetensors``, kohya/A1111 or diffusers keys, or ``"TUSUN"`` from the
        Hub) as the peft adapter ``adapter_name`` (default: the file's stem) at ``scale``, on the UNet and
        the text encoder; the motion ControlNet's ``camera`` / ``object`` adapters are untouched. Loading a
        name again replaces it. Returns the adapter name."""
        placement = [(model, model.device, model.dtype) for model in (self.unet, self.text_encoder)]
        name = load_lora(self._personal_file(lora), self.unet, self.text_encoder, adapter_name, scale)
        for model, device, dtype in placement:
            torch.nn.Module.to(model, device=device, dtype=dtype)
        return name

    def set_lora_scales(self, scales: dict[str, float]) -> None:
        """Rescale loaded LoRAs (``0`` switches one off); LoRAs not named keep their scale."""
        set_lora_scales(scales, self.unet, self.text_encoder)

    def remove_lora(self, adapter_name: str | None = None) -> None:
        """Remove one LoRA (``None``: all); with none left every base weight is as before, bit for bit."""
        remove_lora(adapter_name, self.unet, self.text_encoder)

    def fuse_lora(self) -> None:
        """Merge the loaded LoRAs into the weights as the released app does (``W += scale · up @ down``)."""
        fuse_loras(self.unet, self.text_encoder)

    @property
    def lora_scales(self) -> dict[str, float]:
        """The loaded personalised LoRAs and their scales."""
        return {**lora_scales(self.text_encoder), **lora_scales(self.unet)}

    def compile_networks(self, **compile_kwargs: Any) -> None:
        """Compile the UNet and both ControlNets in place with ``torch.compile`` (opt-in; ``compile_kwargs``
        go to it, e.g. ``dynamic=False``, ``mode="max-autotune"``).

        The first call at a new size compiles (68 s at 16 x 256 x 384 with the official-tiny weights on two
        CPU threads); later calls run the compiled networks. On a CPU their steps are no faster than the
        eager ones and hold more memory (docs/pipeline.md): meant for GPUs and many videos at one size.
        Results agree with the uncompiled networks to float rounding.
        """
        for network in (self.unet, self.image_controlnet, self.flow_controlnet):
            network.compile(**compile_kwargs)

    @property
    def folds_motion_adapters(self) -> bool:
        """Whether sampling folds the motion ControlNet's adapter into a copy of its weights
        (`imageconductor.models.adapter_fusion`), so that its LoRA layers cost nothing per step.

        ``fuse_motion_adapters`` True or False decides; None (default) folds where the adapters hold at
        least `FOLD_MIN_ADAPTER_SHARE` of the adapted weights (small models such as the embedded default,
        not the released one, where the copy would cost memory for no speed), unless the network is
        compiled (`compile_networks`: new folded weights every call could make it compile again). Never
        under CPU offload (accelerate hooks move the weights between devices) or with weights on the
        meta device."""
        network = self.flow_controlnet
        if network is None or self.fuse_motion_adapters is False:
            return False
        if any(hasattr(module, "_hf_hook") for module in network.modules()):
            return False
        if any(param.device.type == "meta" for param in network.parameters()):
            return False
        if self.fuse_motion_adapters:
            return True
        compiled = getattr(network, "_compiled_call_impl", None) is not None
        return not compiled and adapter_share(network) >= FOLD_MIN_ADAPTER_SHARE

    def _motion_adapter_fusion(self) -> AbstractContextManager:
        """The context of one sampling loop: adapters folded when `folds_motion_adapters`."""
        return adapter_fusion(self.flow_controlnet) if self.folds_motion_adapters else nullcontext()

    # ------------------------------------------------------------------ inputs
    def encode_prompt(
        self,
        prompt: str | list[str],
        device: torch.device,
        num_videos_per_prompt: int = 1,
    ) -> torch.Tensor:
        """CLIP text embeddings ``(len(prompt) * num_videos_per_prompt, 77, d)`` (padded to max length)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        attention_mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            attention_mask = tokens.attention_mask.to(device)
        embeds = self.text_encoder(tokens.input_ids.to(device), attention_mask=attention_mask)[0]
        return embeds.to(dtype=self.text_encoder.dtype).repeat_interleave(num_videos_per_prompt, dim=0)

    def prompt_token_count(self, prompt: str) -> int:
        """Tokens of ``prompt`` for the text encoder, start and end tokens included (not truncated)."""
        return len(self.tokenizer(prompt, truncation=False, verbose=False).input_ids)

    def warn_if_truncated(self, prompt: str | list[str] | None) -> None:
        """Warn (`PromptTruncatedWarning`) for each prompt longer than the text encoder reads; the encoder
        sees only its first ``tokenizer.model_max_length`` tokens (77 for CLIP)."""
        limit = self.tokenizer.model_max_length
        for text in [prompt] if isinstance(prompt, str) else list(prompt or []):
            count = self.prompt_token_count(text)
            if count > limit:
                warnings.warn(
                    f"the prompt is {count} tokens long; the text encoder reads only the first {limit}, "
                    f"so the rest is ignored: {text[:40]!r}...",
                    PromptTruncatedWarning,
                    stacklevel=3,
                )

    def encode_image(
        self,
        image: ImageInput,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """First-frame latents ``(1, 4, 1, h, w)``: crop/resize, [-1, 1], VAE sample × scaling factor."""
        pixels = prepare_first_frame(image, height, width).to(self._execution_device, dtype=self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.sample(generator)
        return (latents * self.vae.config.scaling_factor)[:, :, None]

    def prepare_flow_condition(
        self,
        trajectories: Any,
        num_frames: int,
        height: int,
        width: int,
    ) -> torch.Tensor:
        """Flow condition ``(1, 2, num_frames, height, width)`` from tracks, a TrajectorySet or a file path
        (see :func:`load_trajectory_set` for how points are placed in the ``width x height`` model frame)."""
        trajectory_set = load_trajectory_set(trajectories, width, height)
        # uses per-track strengths
        return flow_condition(trajectory_set, num_frames, height, width, **self.flow_encoding.as_kwargs())

    @property
    def flow_encoding(self) -> FlowEncoding:
        """The `imageconductor.trajectories.FlowEncoding` the motion ControlNet was trained with."""
        return FlowEncoding.from_dict(self.config.get("flow_encoding"))

    @property
    def native_size(self) -> VideoSize:
        """The video size this model renders when none is asked for (its ``native_size`` setting)."""
        return VideoSize.native(self.config)

    def decode_latents(self, latents: torch.Tensor, chunk_size: int = 1) -> torch.Tensor:
        """Decode latents ``(B, 4, F, h, w)`` to a video ``(B, 3, F, H, W)`` in [0, 1], ``chunk_size`` frames
        per VAE call (1: frame by frame, the least memory; larger: fewer, bigger calls)."""
        _check_chunk_size(chunk_size)
        batch, _, num_frames, _, _ = latents.shape
        flat = (latents / self.vae.config.scaling_factor).permute(0, 2, 1, 3, 4).flatten(0, 1)
        flat = flat.to(dtype=self.vae.dtype)
        frames = torch.cat(
            [
                self.vae.decode(flat[start : start + chunk_size]).sample
                for start in range(0, flat.shape[0], chunk_size)
            ]
        )
        video = frames.unflatten(0, (batch, num_frames)).permute(0, 2, 1, 3, 4)
        return (video / 2 + 0.5).clamp(0, 1).float()

    def prepare_latents(
        self,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
        scheduler: SchedulerMixin | None = None,
    ) -> torch.Tensor:
        """Initial noise (drawn with ``generator`` unless ``latents`` is given) × the ``init_noise_sigma`` of
        ``scheduler`` (default ``self.scheduler``; call after its ``set_timesteps``)."""
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != tuple(shape):
            raise ValueError(f"latents must be shaped {tuple(shape)}, got {tuple(latents.shape)}")
        scheduler = self.scheduler if scheduler is None else scheduler
        return latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma

    def _sampling_scheduler(self, name: str | None) -> SchedulerMixin:
        """The scheduler one call samples with: ``self.scheduler``, or a fresh one named ``name`` built from
        its config (multistep solvers keep history, so each call gets its own)."""
        return self.scheduler if name is None else make_scheduler(name, self.scheduler_source_config())

    def _extra_step_kwargs(
        self, generator: Any, eta: float, scheduler: SchedulerMixin | None = None
    ) -> dict[str, Any]:
        """``eta`` and ``generator`` for the scheduler's ``step``, each only where it takes them."""
        scheduler = self.scheduler if scheduler is None else scheduler
        accepted = set(inspect.signature(scheduler.step).parameters)
        kwargs: dict[str, Any] = {}
        if "eta" in accepted:
            kwargs["eta"] = eta
        if "generator" in accepted:
            kwargs["generator"] = generator
        return kwargs

    @staticmethod
    def _resolve_mode(mode: AdapterSelection | None, trajectories: Any) -> AdapterSelection:
        """``None`` -> "camera" when every track of a TrajectorySet is a camera track, else "object"."""
        if mode is not None:
            return normalize_mode(mode)
        kinds = getattr(trajectories, "kinds", None)
        if kinds and all(kind == "camera" for kind in kinds):
            return "camera"
        return "object"

    @staticmethod
    def _batch_to(tensor: torch.Tensor, batch_size: int, name: str) -> torch.Tensor:
        if tensor.shape[0] == batch_size:
            return tensor
        if tensor.shape[0] == 1:
            return tensor.expand(batch_size, *tensor.shape[1:])
        raise ValueError(f"{name} has batch size {tensor.shape[0]}; expected 1 or {batch_size}")

    def _resolve_sizes(
        self,
        num_frames: int | None,
        height: int | None,
        width: int | None,
        latents: torch.Tensor | None,
        image_latents: torch.Tensor | None,
        flow_condition: torch.Tensor | None,
    ) -> tuple[int, int, int]:
        """Fill unset sizes from the flow condition, the image latents or the latents (in that order), else
        from the model's native size."""
        scale = self.vae_scale_factor
        if flow_condition is not None and flow_condition.ndim == 5:
            num_frames = num_frames or flow_condition.shape[2]
            height = height or flow_condition.shape[3]
            width = width or flow_condition.shape[4]
        if image_latents is not None and image_latents.ndim >= 4:
            height = height or image_latents.shape[-2] * scale
            width = width or image_latents.shape[-1] * scale
        if latents is not None and latents.ndim == 5:
            num_frames = num_frames or latents.shape[2]
            height = height or latents.shape[3] * scale
            width = width or latents.shape[4] * scale
        native = self.native_size
        num_frames = num_frames or native.num_frames
        height, width = height or native.height, width or native.width
        check_video_size(num_frames, height, width, scale)
        return num_frames, height, width

    def check_inputs(
        self,
        prompt: str | list[str] | None,
        prompt_embeds: torch.Tensor | None,
        negative_prompt: str | list[str] | None,
        negative_prompt_embeds: torch.Tensor | None,
        image: ImageInput | None,
        image_latents: torch.Tensor | None,
        trajectories: Any,
        flow_condition: torch.Tensor | None,
        num_inference_steps: int,
        output_type: str,
        callback_on_step_end_tensor_inputs: Sequence[str],
        guidance_scale: float = 7.5,
        camera_free_guidance: float | None = None,
        motion_guidance_scale: float = 1.0,
        flow_conditioning_scale: float = 1.0,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        scheduler: str | None = None,
    ) -> None:
        """Raise ValueError / TypeError naming the argument that is missing, doubled, malformed, not finite
        or out of range (see `check_sampling_numbers`), or a scheduler that cannot sample this model (see
        `imageconductor.pipelines.schedulers.check_scheduler`), before any compute."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("pass exactly one of `prompt` and `prompt_embeds`")
        if prompt is not None and not (
            isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt))
        ):
            raise TypeError(f"`prompt` must be a string or a list of strings, got {type(prompt).__name__}")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("pass at most one of `negative_prompt` and `negative_prompt_embeds`")
        if negative_prompt is not None and not isinstance(negative_prompt, str | list):
            raise TypeError(
                f"`negative_prompt` must be a string or a list, got {type(negative_prompt).__name__}"
            )
        if (image is None) == (image_latents is None):
            raise ValueError("pass exactly one of `image` (the first frame) and `image_latents`")
        if (trajectories is None) == (flow_condition is None):
            raise ValueError("pass exactly one of `trajectories` and `flow_condition`")
        check_sampling_numbers(
            num_inference_steps,
            guidance_scale,
            camera_free_guidance,
            motion_guidance_scale,
            flow_conditioning_scale,
            max_steps=max_inference_steps(self.scheduler_source_config()),
        )
        if isinstance(num_videos_per_prompt, bool) or not isinstance(num_videos_per_prompt, int):
            raise ValueError(
                f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}"
            )
        if num_videos_per_prompt < 1:
            raise ValueError(
                f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}"
            )
        if isinstance(eta, bool) or not isinstance(eta, int | float) or not 0 <= eta <= 1:
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
        if scheduler is not None:
            name = check_scheduler(scheduler, self.scheduler_source_config())
            if eta != 0 and not SCHEDULERS[name].takes_eta:
                raise ValueError(f"eta is DDIM's; scheduler {name!r} does not take it (leave eta at 0)")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        unknown = [
            name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs
        ]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {unknown} not in {self._callback_tensor_inputs}"
            )

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        image: ImageInput | None = None,
        trajectories: Any = None,
        mode: AdapterSelection | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 7.5,
        camera_free_guidance: float | None = None,
        motion_guidance_scale: float = 1.0,
        flow_conditioning_scale: float = 1.0,
        negative_prompt: str | list[str] | None = None,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        image_latents: torch.Tensor | None = None,
        flow_condition: torch.Tensor | None = None,
        output_type: str = "pil",
        decode_chunk_size: int = 1,
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        scheduler: str | None = None,
    ) -> ImageConductorPipelineOutput | tuple:
        r"""Generate a video whose first frame is ``image`` and whose motion follows ``trajectories``.

        Args:
            prompt / prompt_embeds: the text (or its CLIP embeddings ``(B, 77, d)``).
            image: the first frame (PIL, uint8 array, or float array/tensor in [0, 1]); it is centre-cropped
                to ``width / height``, resized, encoded with the VAE (sampled with ``generator``) and scaled
                by ``vae.config.scaling_factor``. Or give ``image_latents`` ``(1|B, 4, 1, h, w)`` directly.
            trajectories: a list of tracks (each a list of ``[x, y]`` pixels of the model frame), a
                ``TrajectorySet`` or a path to a trajectory JSON file (an official list file is in the
                released 384×256 frame; see :func:`load_trajectory_set`). Or give ``flow_condition``
                ``(1|B, 2, num_frames, height, width)`` directly.
            mode: flow-ControlNet adapter: ``"object"``, ``"camera"``, ``"none"`` or blend weights such as
                ``{"camera": 1.0, "object": 0.5}``. ``None``: ``"camera"`` for a TrajectorySet of camera
                tracks only, else ``"object"``.
            num_frames, height, width: video size; unset values come from ``flow_condition``, then
                ``image_latents``, then ``latents``, else the model's ``native_size``.
            num_inference_steps: sampling steps, one noise prediction each (25 DDIM steps in the release).
            guidance_scale: classifier-free guidance scale λ_cfg (7.5 in the release); ``<= 1`` turns it off.
            camera_free_guidance: λ_traj of the paper's Eq. 5; ``None`` is the released behaviour.
            motion_guidance_scale: extrapolates the trajectories' effect against trajectory control off, as
                classifier-free guidance does the prompt's (one more batch row when not 1); 1 (default) is
                the released behaviour, above 1 the video follows the trajectories more strongly.
            flow_conditioning_scale: factor on the motion ControlNet's residuals (1 in the release); ``0``
                turns trajectory control off (the flow ControlNet is not run), the baseline of ObjMC / CamMC.
            negative_prompt / negative_prompt_embeds: the unconditional text (default "").
            num_videos_per_prompt: videos per prompt.
            eta: DDIM η (other schedulers take none). generator: torch generator(s) for the noise, the VAE
                sample and the noise an ancestral scheduler adds per step.
            latents: initial noise ``(B, C, num_frames, height / f, width / f)``, ``f`` the VAE's scale factor.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` (``(B, 3, F, H, W)`` in [0, 1]) or ``"latent"``.
            decode_chunk_size: frames per VAE decoder call (1 = frame by frame, the least memory).
            return_dict: return :class:`ImageConductorPipelineOutput` (else a tuple ``(frames,)``).
            callback_on_step_end: ``fn(pipe, step, timestep, callback_kwargs) -> dict`` after every step, with
                the tensors named in ``callback_on_step_end_tensor_inputs``; a returned ``"latents"``
                replaces the current latents.
            scheduler: a scheduler name (``"ddim"``, ``"dpm++2m"``, ``"unipc"``, ``"euler"``, ...; see
                `imageconductor.pipelines.schedulers`) built afresh for this call from ``self.scheduler``'s
                config; ``None`` samples with ``self.scheduler`` itself.
        """
        callback_on_step_end_tensor_inputs = list(callback_on_step_end_tensor_inputs)
        self.check_inputs(
            prompt,
            prompt_embeds,
            negative_prompt,
            negative_prompt_embeds,
            image,
            image_latents,
            trajectories,
            flow_condition,
            num_inference_steps,
            output_type,
            callback_on_step_end_tensor_inputs,
            guidance_scale=guidance_scale,
            camera_free_guidance=camera_free_guidance,
            motion_guidance_scale=motion_guidance_scale,
            flow_conditioning_scale=flow_conditioning_scale,
            num_videos_per_prompt=num_videos_per_prompt,
            eta=eta,
            scheduler=scheduler,
        )
        _check_chunk_size(decode_chunk_size)
        for text in (prompt, negative_prompt):
            self.warn_if_truncated(text)
        num_frames, height, width = self._resolve_sizes(
            num_frames, height, width, latents, image_latents, flow_condition
        )
        if trajectories is not None:
            trajectories = load_trajectory_set(trajectories, width, height)
        mode = self._resolve_mode(mode, trajectories)
        plan = plan_guidance(
            mode,
            guidance_scale,
            camera_free_guidance,
            motion_guidance_scale,
            trajectory_control=flow_conditioning_scale != 0,
        )
        device = self._execution_device
        dtype = self.unet.dtype

        # 1. Text: positive embeddings, plus the unconditional ones when a row needs them.
        if prompt_embeds is None:
            prompt_embeds = self.encode_prompt(prompt, device, num_videos_per_prompt)
        else:
            prompt_embeds = prompt_embeds.to(device).repeat_interleave(num_videos_per_prompt, dim=0)
        batch_size = prompt_embeds.shape[0]
        if plan.uses_negative_prompt:
            if negative_prompt_embeds is None:
                prompt_count = batch_size // num_videos_per_prompt
                negatives = negative_prompt if negative_prompt is not None else ""
                negatives = [negatives] * prompt_count if isinstance(negatives, str) else list(negatives)
                if len(negatives) != prompt_count:
                    raise ValueError(
                        f"negative_prompt has {len(negatives)} entries for {prompt_count} prompts"
                    )
                negative_prompt_embeds = self.encode_prompt(negatives, device, num_videos_per_prompt)
            else:
                negative_prompt_embeds = negative_prompt_embeds.to(device).repeat_interleave(
                    num_videos_per_prompt, dim=0
                )
            if negative_prompt_embeds.shape != prompt_embeds.shape:
                raise ValueError(
                    f"negative_prompt_embeds {tuple(negative_prompt_embeds.shape)} must match prompt_embeds "
                    f"{tuple(prompt_embeds.shape)}"
                )

        # 2. Conditions: first-frame latents -> image condition (B, 5, F, h, w); tracks -> flow (B, 2, F, H, W).
        if image_latents is None:
            image_latents = self.encode_image(image, height, width, generator=_first_generator(generator))
        if image_latents.ndim == 4:
            image_latents = image_latents[:, :, None]
        latent_size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        if image_latents.ndim != 5 or tuple(image_latents.shape[-2:]) != latent_size:
            raise ValueError(
                f"image_latents must be (B, C, 1, {latent_size[0]}, {latent_size[1]}), got "
                f"{tuple(image_latents.shape)}"
            )
        image_latents = self._batch_to(image_latents.to(device, dtype), batch_size, "image_latents")
        image_cond = image_condition(image_latents, num_frames)
        if flow_condition is None:
            flow_condition = self.prepare_flow_condition(trajectories, num_frames, height, width)
        expected_flow = (2, num_frames, height, width)
        if flow_condition.ndim != 5 or tuple(flow_condition.shape[1:]) != expected_flow:
            raise ValueError(
                f"flow_condition must be (B, {', '.join(map(str, expected_flow))}), got {tuple(flow_condition.shape)}"
            )
        flow_cond = self._batch_to(flow_condition.to(device, dtype), batch_size, "flow_condition")
        if self.flow_controlnet is not None:  # pixel-unshuffled once here rather than in every step
            flow_cond = self.flow_controlnet.fold_condition(flow_cond, latent_size)

        # 3. Guidance rows: stack text per row; image / flow conditions are the same in every row.
        text_by_row = {"negative": negative_prompt_embeds, "positive": prompt_embeds}
        row_text = torch.cat([text_by_row[row.text] for row in plan.rows]).to(dtype)
        row_image_cond = _stack_rows(image_cond, plan.num_rows)
        row_flow_cond = _stack_rows(flow_cond, plan.num_rows)
        row_adapters = plan.row_adapters(batch_size)
        row_flow_scales = plan.row_flow_scales(batch_size, flow_conditioning_scale)

        # 4. Timesteps and initial noise (× the scheduler's init_noise_sigma, known after set_timesteps).
        sampler = self._sampling_scheduler(scheduler)
        sampler.set_timesteps(num_inference_steps, device=device)
        timesteps = sampler.timesteps
        latent_channels = self.vae.config.latent_channels
        latents = self.prepare_latents(
            (batch_size, latent_channels, num_frames, *latent_size),
            dtype,
            device,
            generator,
            latents,
            sampler,
        )
        extra_step_kwargs = self._extra_step_kwargs(generator, eta, sampler)
        self._num_timesteps = len(timesteps)

        # 5. Denoising loop: one batched noise prediction over all guidance rows per step.
        with self.progress_bar(total=len(timesteps)) as progress_bar, self._motion_adapter_fusion():
            for step_index, timestep in enumerate(timesteps):
                model_input = sampler.scale_model_input(latents.repeat(plan.num_rows, 1, 1, 1, 1), timestep)
                eps_rows = predict_noise(
                    self.unet,
                    self.image_controlnet,
                    self.flow_controlnet,
                    model_input,
                    timestep,
                    encoder_hidden_states=row_text,
                    image_condition=row_image_cond,
                    flow_condition=row_flow_cond,
                    adapters=row_adapters,
                    flow_scale=row_flow_scales,
                )
                eps = plan.combine(eps_rows.to(latents.dtype))
                latents = sampler.step(eps, timestep, latents, **extra_step_kwargs).prev_sample

                if callback_on_step_end is not None:
                    available = {
                        "latents": latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                    }
                    callback_kwargs = {name: available[name] for name in callback_on_step_end_tensor_inputs}
                    outputs = callback_on_step_end(self, step_index, timestep, callback_kwargs) or {}
                    latents = outputs.pop("latents", latents)
                progress_bar.update()

        # 6. Decode.
        if output_type == "latent":
            frames: Any = latents
        else:
            video = self.decode_latents(latents, decode_chunk_size)
            frames = _format_video(video, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return ImageConductorPipelineOutput(frames=frames)


def load_trajectory_set(
    trajectories: Any, width: int, height: int, source_size: tuple[int, int] | None = None
) -> TrajectorySet:
    """Validate ``trajectories`` into a TrajectorySet in the ``width x height`` model frame.

    The frame the points are in depends on where they come from:

    * a file (a path) or JSON text in the official list format: drawn on the released 384×256 canvas
      (``DEFAULT_IMAGE_SIZE``), or on ``source_size`` ``(width, height)`` when given; rescaled to the model
      frame. Every command that reads trajectory files goes through here, so a file means the same
      everywhere, whatever size the model renders;
    * a plain list (or ``(K, N, 2)`` array) of tracks: pixels of the ``width x height`` frame being
      generated, as in the released code, or of ``source_size`` when given;
    * a rich-format file or a TrajectorySet: the ``image_size`` it states (``source_size`` is not used).

    Raises ``TrajectoryError`` (a ValueError) naming the track and point at fault.
    """
    if isinstance(trajectories, np.ndarray) and trajectories.ndim == 3:
        trajectories = list(trajectories)
    if source_size is None and not isinstance(trajectories, str | bytes | os.PathLike):
        source_size = (width, height)
    trajectory_set = load_trajectories(trajectories, image_size=source_size)
    if tuple(trajectory_set.image_size) != (width, height):
        trajectory_set = trajectory_set.rescaled(width, height)
    return trajectory_set


def _check_chunk_size(chunk_size: Any) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"decode_chunk_size must be a positive integer, got {chunk_size!r}")


def _stack_rows(tensor: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``num_rows`` copies of a batch along dim 0; a view without copying when the batch is one video."""
    if tensor.shape[0] == 1:
        return tensor.expand(num_rows, *tensor.shape[1:])
    return tensor.repeat(num_rows, *([1] * (tensor.ndim - 1)))


def _first_generator(generator: torch.Generator | list[torch.Generator] | None) -> torch.Generator | None:
    if isinstance(generator, list):
        return generator[0] if generator else None
    return generator


def _format_video(video: torch.Tensor, output_type: str) -> torch.Tensor | np.ndarray | list:
    """``video`` (B, 3, F, H, W) in [0, 1] -> the requested ``output_type``."""
    if output_type == "pt":
        return video
    array = video.permute(0, 2, 3, 4, 1).cpu().numpy()
    if output_type == "np":
        return array
    return [[PIL.Image.fromarray(np.round(frame * 255).astype(np.uint8)) for frame in clip] for clip in array]


def output_to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """First video of a ``"pt"`` / ``"np"`` output as ``(F, H, W, 3)`` uint8 (for writing video files)."""
    if isinstance(frames, torch.Tensor):
        frames = frames[0].permute(1, 2, 3, 0).cpu().numpy()
    else:
        frames = np.asarray(frames)[0]
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
