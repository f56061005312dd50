"""The official-tiny fixture in Python: its pipeline and its golden-run inputs, for tests and benchmarks.

Tests import it directly (pytest puts ``tests/`` on the path); benchmarks add ``tests/`` to ``sys.path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

OFFICIAL_TINY = Path(__file__).resolve().parent / "fixtures" / "official_tiny"


def load_official_tiny(dtype: torch.dtype = torch.float32, fixture: Path = OFFICIAL_TINY):
    """``ImageConductorPipeline.from_official`` on the fixture's files in ``dtype`` (progress bar off)."""
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    weights = fixture / "official-weights"
    pipe = ImageConductorPipeline.from_official(
        fixture / "sd15-tiny",
        unet_path=weights / "unet.ckpt",
        image_controlnet_path=weights / "image_controlnet.ckpt",
        flow_controlnet_path=weights / "flow_controlnet.ckpt",
        torch_dtype=dtype,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def official_tiny_sampling_inputs(fixture: Path = OFFICIAL_TINY, steps: int = 2) -> dict:
    """Pipeline keyword arguments of the fixture's golden run: its prompt, image latents, flow condition,
    initial noise, size and CFG scale, with ``steps`` DDIM steps."""
    from safetensors.torch import load_file

    manifest = json.loads((fixture / "manifest.json").read_text())
    step = load_file(fixture / "single_step.safetensors")
    sampling = load_file(fixture / "sampling.safetensors")
    size = manifest["size"]
    return {
        "prompt": manifest["prompt"],
        "image_latents": step["image_latents"],
        "flow_condition": step["flow_condition"],
        "latents": sampling["object.initial_latents"],
        "num_frames": size["L"],
        "height": size["H"],
        "width": size["W"],
        "num_inference_steps": steps,
        "guidance_scale": manifest["sampling"]["guidance_scale"],
    }
