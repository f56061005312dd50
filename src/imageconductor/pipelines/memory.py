"""How much memory a generation request needs, estimated before any weight is loaded.

The estimate has two parts:

* **weights**: parameter counts of every network, read from their configs (the models are built on the
  ``meta`` device, which allocates nothing), times the bytes of the requested dtype;
* **activations**: the largest working set of one denoising step or of the VAE decoding, derived from the
  UNet and VAE configs and the request (frames, size, guidance rows, decoding chunk):

  - a step keeps the skip connections of the UNet and the residuals of the two ControlNets (three sets of
    every down-block output, ``C_l x h_l x w_l`` per frame and row) plus the working set of the widest
    transformer block (hidden states, norm, q, k, v, attention output and the GEGLU feed-forward: 16
    tensors of ``C_0 x h_0 x w_0``; attention runs through SDPA, whose memory grows with the sequence,
    not its square);
  - decoding keeps about six tensors of the VAE decoder's top level at full resolution per frame of a
    chunk;
  - the larger of the two is multiplied by `ACTIVATION_OVERHEAD`, the measured ratio of peak to derived
    working set (temporaries of convolutions, norms and LoRA layers, allocator slack): 1.76 to 2.06 over
    three requests on the official-tiny fixture and 1.79 / 1.83 at the released sizes in float32 /
    bfloat16 on CPU (``benchmarks/memory_estimate.py``, ``benchmarks/full_size_inference.py``).

`imageconductor.cli` compares the estimate with `available_memory` and refuses requests that cannot fit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "MemoryEstimate",
    "available_memory",
    "estimate_request_memory",
    "folder_parameter_counts",
    "official_parameter_counts",
]

#: Tensors of the widest transformer block alive at once (see the module docstring).
TRANSFORMER_WORKING_TENSORS = 16
#: Down-block output sets alive during a step: UNet skips + image and flow ControlNet residuals.
RESIDUAL_SETS = 3
#: Full-resolution tensors of the VAE decoder's top level alive per decoded frame.
DECODER_WORKING_TENSORS = 6
#: Measured peak activations / derived working set (see the module docstring).
ACTIVATION_OVERHEAD = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a request needs: model weights and the largest activation working set."""

    weights: int
    activations: int

    @property
    def total(self) -> int:
        """Weights + activations, in bytes."""
        return self.weights + self.activations

    def describe(self) -> str:
        """``"about 9.8 GiB (weights 9.1 GiB + activations 0.7 GiB)"``."""
        gib = 1024**3
        return (
            f"about {self.total / gib:.1f} GiB (weights {self.weights / gib:.1f} GiB + activations "
            f"{self.activations / gib:.1f} GiB)"
        )


def _meta_parameter_count(build: Any) -> int:
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = build()
    return sum(parameter.numel() for parameter in model.parameters())


def _diffusers_count(class_name: str, config: Mapping[str, Any], module: str = "diffusers") -> int:
    import importlib

    model_class = getattr(importlib.import_module(module), class_name)
    return _meta_parameter_count(lambda: model_class.from_config(dict(config)))


def _text_encoder_count(config_path: Path) -> int:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig.from_json_file(str(config_path))
    return _meta_parameter_count(lambda: CLIPTextModel(config))


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def official_parameter_counts(
    sd15_folder: str | Path, motion_max_seq_length: int = 32, temporal_layers: int = 1
) -> dict[str, int]:
    """Parameter counts of the released architecture built on ``sd15_folder``'s configs (no weights read).

    The motion-module layout is the released one (a 32-frame position table, one temporal layer); the
    flow ControlNet's LoRA adapters (rank 64, about 2 % of its weights) are not counted.
    """
    from imageconductor.models.convert_official import (
        MotionLayout,
        controlnet_config,
        read_sd_unet_config,
        unet_config,
    )

    folder = Path(sd15_folder)
    sd_config = read_sd_unet_config(folder)
    unet_layout = MotionLayout(motion_max_seq_length, temporal_layers, True, False)
    control_layout = MotionLayout(motion_max_seq_length, temporal_layers, False, False)
    module = "imageconductor.models"
    return {
        "unet": _diffusers_count("ImageConductorUNetModel", unet_config(sd_config, unet_layout), module),
        "image_controlnet": _diffusers_count(
            "ImageConductorControlNetModel", controlnet_config(sd_config, control_layout, 4, True), module
        ),
        "flow_controlnet": _diffusers_count(
            "ImageConductorControlNetModel", controlnet_config(sd_config, control_layout, 128, False), module
        ),
        "vae": _diffusers_count("AutoencoderKL", _read_json(folder / "vae" / "config.json")),
        "text_encoder": _text_encoder_count(folder / "text_encoder" / "config.json"),
    }


def folder_parameter_counts(folder: str | Path) -> dict[str, int]:
    """Parameter counts of a ``save_pretrained`` folder's networks, from their configs (no weights read)."""
    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    counts = {}
    for name in ("unet", "image_controlnet", "flow_controlnet", "vae"):
        library, class_name = index[name]
        counts[name] = _diffusers_count(class_name, _read_json(folder / name / "config.json"), library)
    counts["text_encoder"] = _text_encoder_count(folder / "text_encoder" / "config.json")
    return counts


def estimate_request_memory(
    parameter_counts: Mapping[str, int],
    unet_config: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    num_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype = torch.float32,
    guidance_rows: int = 2,
    decode_chunk_size: int = 1,
    offload: bool = False,
) -> MemoryEstimate:
    """The memory one request needs on its device.

    Args:
        parameter_counts: parameters per network (`official_parameter_counts` / `folder_parameter_counts`).
        unet_config / vae_config: the UNet's ``block_out_channels`` and ``layers_per_block``; the VAE's
            ``block_out_channels`` (its scale factor and decoder width).
        guidance_rows: noise predictions per step (2 with classifier-free guidance, 3 with camera-free
            guidance, one more with motion guidance).
        offload: model CPU offload: only the largest network's weights are on the device at a time.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    weights = (max(parameter_counts.values()) if offload else sum(parameter_counts.values())) * itemsize

    vae_channels = list(vae_config["block_out_channels"])
    factor = 2 ** (len(vae_channels) - 1)
    latent_h, latent_w = height // factor, width // factor
    channels = list(unet_config["block_out_channels"])
    per_level = int(unet_config.get("layers_per_block", 2)) + 1
    residual_elements = 0
    for level, width_l in enumerate(channels):
        pixels = (latent_h // 2**level) * (latent_w // 2**level)
        outputs = per_level if level < len(channels) - 1 else per_level - 1
        residual_elements += outputs * width_l * pixels
    working_elements = TRANSFORMER_WORKING_TENSORS * channels[0] * latent_h * latent_w
    rows_frames = guidance_rows * num_frames
    step = rows_frames * (RESIDUAL_SETS * residual_elements + working_elements) * itemsize
    decode = decode_chunk_size * DECODER_WORKING_TENSORS * vae_channels[0] * height * width * itemsize
    return MemoryEstimate(weights=int(weights), activations=int(ACTIVATION_OVERHEAD * max(step, decode)))


def available_memory(device: str | torch.device) -> int:
    """Free bytes on ``device``: ``torch.cuda.mem_get_info`` for CUDA, else the host's available memory
    (``psutil`` when installed, else ``MemAvailable`` of ``/proc/meminfo``)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("cannot read the available memory (no psutil, no MemAvailable in /proc/meminfo)")
