"""How far bfloat16 (and float16 where it runs) lands from float32 on the official-tiny fixture.

Runs the fixture's two-step guided sampling in float32 and in each other dtype from the same inputs and
prints ``max |latents_dtype - latents_fp32| / max |latents_fp32|`` of the final latents.

    python benchmarks/dtype_deviation.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from imageconductor.pipelines import ImageConductorPipeline

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official_tiny"


def sampling_inputs(fixture: Path = FIXTURE) -> dict:
    """The fixture's golden-run inputs with two DDIM steps (as ``tests/conftest.py`` builds them)."""
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
        "num_inference_steps": 2,
        "guidance_scale": manifest["sampling"]["guidance_scale"],
    }


def final_latents(dtype: torch.dtype, fixture: Path = FIXTURE) -> torch.Tensor:
    """The fixture's two-step latents with every network in ``dtype``, as float32."""
    weights = fixture / "official-weights"
    pipe = ImageConductorPipeline.from_official(
        fixture / "sd15-tiny",
        unet_path=weights / "unet.ckpt",
        image_controlnet_path=weights / "image_controlnet.ckpt",
        flow_controlnet_path=weights / "flow_controlnet.ckpt",
        torch_dtype=dtype,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe(**sampling_inputs(fixture), output_type="latent").frames.float()


def relative_deviation(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """``max |ours - reference| / max |reference|``."""
    return float((ours - reference).abs().max() / reference.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float16"])
    args = parser.parse_args()
    reference = final_latents(torch.float32)
    print("| dtype | max relative deviation of the 2-step latents from float32 |")
    print("|---|---|")
    for name in args.dtypes:
        try:
            print(f"| {name} | {relative_deviation(final_latents(getattr(torch, name)), reference):.2e} |")
        except (RuntimeError, NotImplementedError) as exc:
            print(f"| {name} | does not run on this device: {' '.join(str(exc).split())[:80]} |")


if __name__ == "__main__":
    main()
