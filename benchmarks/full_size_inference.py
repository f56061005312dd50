"""Peak memory and seconds per step of the released architecture at its real sizes, on this machine.

The networks are built from the real configs (Stable Diffusion 1.5's UNet, VAE and CLIP text encoder,
the released motion modules and both ControlNets, the flow ControlNet with two rank-64 LoRA adapters)
with random weights: nothing is downloaded. Each dtype runs in a fresh process, so its peak resident
memory is its own: the table gives the resident memory once the networks are built and its peak while
sampling and decoding (Linux ``VmHWM``, reset after building), next to `estimate_request_memory`'s total
and what it expects on top of the built networks (activations, and with ``--fold`` the motion
ControlNet's copy with its adapter folded in, which the pipeline does not make for this model by itself).

    python benchmarks/full_size_inference.py                       # 16 x 256 x 384, 2 steps, fp32 + bf16
    python benchmarks/full_size_inference.py --frames 4 --steps 1  # quicker
    python benchmarks/full_size_inference.py --device cuda --dtypes float16 [--offload]
    python benchmarks/full_size_inference.py --frames 4 --steps 3 --dtypes bfloat16 --fold  # adapter folded
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

#: A tokenizer for the pipeline object; the benchmark passes prompt embeddings, so its vocabulary is unused.
TOKENIZER = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official_tiny" / "sd15-tiny" / "tokenizer"
)

#: ``unet/config.json`` of stable-diffusion-v1-5 (the sizes that matter here).
SD15_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "downsample_padding": 1,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-5,
    "norm_num_groups": 32,
    "sample_size": 64,
}
#: ``vae/config.json`` of stable-diffusion-v1-5.
SD15_VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
#: CLIP ViT-L/14 text encoder of stable-diffusion-v1-5.
SD15_TEXT_CONFIG = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
}
#: The released app's flow-ControlNet LoRA rank.
RELEASED_LORA_RANK = 64


def build_pipeline(dtype: torch.dtype):
    """The released architecture at real sizes with random weights, as an ImageConductorPipeline."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from imageconductor.models import (
        ImageConductorControlNetModel,
        ImageConductorUNetModel,
        official_scheduler,
    )
    from imageconductor.models.convert_official import MotionLayout, controlnet_config, unet_config
    from imageconductor.models.lora import lora_config_for_modules
    from imageconductor.pipelines import ImageConductorPipeline

    torch.manual_seed(0)
    unet = ImageConductorUNetModel.from_config(
        unet_config(SD15_UNET_CONFIG, MotionLayout(32, 1, True, False))
    )
    control_layout = MotionLayout(32, 1, False, False)
    image_cn = ImageConductorControlNetModel.from_config(
        controlnet_config(SD15_UNET_CONFIG, control_layout, 4, True)
    )
    flow_cn = ImageConductorControlNetModel.from_config(
        controlnet_config(SD15_UNET_CONFIG, control_layout, 128, False)
    )
    targets = {
        name: RELEASED_LORA_RANK
        for name, module in flow_cn.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
    }
    for adapter in ("camera", "object"):
        flow_cn.add_adapter(lora_config_for_modules(targets), adapter_name=adapter)
    pipe = ImageConductorPipeline(
        vae=AutoencoderKL.from_config(SD15_VAE_CONFIG),
        text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT_CONFIG)),
        tokenizer=CLIPTokenizer.from_pretrained(TOKENIZER),
        unet=unet,
        image_controlnet=image_cn,
        flow_controlnet=flow_cn,
        scheduler=official_scheduler(),
    )
    pipe.to(dtype=dtype)
    for model in (pipe.unet, pipe.image_controlnet, pipe.flow_controlnet, pipe.vae, pipe.text_encoder):
        model.requires_grad_(False).eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reset_peak_rss() -> int:
    """Reset the process's peak resident memory (Linux ``clear_refs`` 5); return the current one in bytes."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """Peak resident memory since the last `reset_peak_rss`, in bytes."""
    return _status_kib("VmHWM") * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def measure(
    dtype_name: str,
    frames: int,
    height: int,
    width: int,
    steps: int,
    chunk: int,
    device: str = "cpu",
    offload: bool = False,
    fold: bool | None = None,
) -> dict:
    """One run in this process: seconds per step, decode seconds, memory after building the networks and
    its peak while sampling and decoding (resident memory on CPU, allocated memory on CUDA)."""
    from imageconductor.pipelines.memory import estimate_request_memory

    dtype = getattr(torch, dtype_name)
    started = time.perf_counter()
    pipe = build_pipeline(dtype)
    build_s = time.perf_counter() - started
    counts = {
        name: sum(p.numel() for n, p in getattr(pipe, name).named_parameters() if "lora_" not in n)
        for name in ("unet", "image_controlnet", "flow_controlnet", "vae", "text_encoder")
    }
    generator = torch.Generator().manual_seed(0)
    latent = (height // 8, width // 8)
    stamps: list[float] = []

    cuda = torch.device(device).type == "cuda"

    def on_step(_pipe, _step, _timestep, kwargs):
        if cuda:
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())
        return kwargs

    pipe.fuse_motion_adapters = fold
    if offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)
    else:
        resident = reset_peak_rss()
    begin = time.perf_counter()
    pipe(
        prompt_embeds=torch.randn(1, 77, 768, generator=generator),
        image_latents=torch.randn(1, 4, 1, *latent, generator=generator),
        flow_condition=torch.randn(1, 2, frames, height, width, generator=generator),
        num_inference_steps=steps,
        guidance_scale=7.5,
        mode="object",
        output_type="pt",
        decode_chunk_size=chunk,
        callback_on_step_end=on_step,
    )
    end = time.perf_counter()
    peak = torch.cuda.max_memory_allocated(device) if cuda else peak_rss()
    estimate = estimate_request_memory(
        counts, pipe.unet.config, pipe.vae.config, frames, height, width, dtype, 2, chunk, offload
    )
    return {
        "dtype": dtype_name,
        "build_s": build_s,
        "first_step_s": stamps[0] - begin,
        "step_s": (stamps[-1] - begin) / len(stamps),
        # Steps after the first (which also folds the adapter and sets up); None with one step.
        "later_step_s": (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else None,
        "decode_s": end - stamps[-1],
        "resident_gib": resident / 1024**3,
        "peak_gib": peak / 1024**3,
        "estimate_gib": estimate.total / 1024**3,
        "estimate_activations_gib": estimate.activations / 1024**3,
        # What the estimate expects on top of the built networks: activations, and the folded copy.
        "estimate_extra_gib": (
            estimate.activations
            + (counts["flow_controlnet"] if pipe.folds_motion_adapters else 0)
            * torch.empty((), dtype=dtype).element_size()
        )
        / 1024**3,
        "folded": pipe.folds_motion_adapters,
        "parameters": sum(counts.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--decode-chunk-size", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (CUDA: allocated-memory peaks)")
    parser.add_argument("--offload", action="store_true", help="model CPU offload to --device (CUDA)")
    parser.add_argument(
        "--fold",
        action="store_true",
        help="fold the motion ControlNet's adapter into a copy of its weights (default: the pipeline decides)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.frames, args.height, args.width, args.steps, args.decode_chunk_size)
    if args.one:
        result = measure(args.one, *shape, device=args.device, offload=args.offload, fold=args.fold or None)
        print(json.dumps(result))
        return
    print(
        f"real-size released architecture, {args.device}{' with offload' if args.offload else ''} "
        f"({torch.get_num_threads()} CPU threads), CFG (2 rows), "
        f"{args.frames} x {args.height} x {args.width}, {args.steps} DDIM steps, decode chunk "
        f"{args.decode_chunk_size}, motion ControlNet adapter {'folded' if args.fold else 'as the pipeline decides'}"
    )
    print(
        "| dtype | parameters | s / step | s / step after the first | VAE decode s | resident after build GiB | peak while sampling GiB "
        "| estimate GiB | peak - resident GiB | estimated on top GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dtype_name in args.dtypes:
        command = [
            sys.executable,
            __file__,
            "--one",
            dtype_name,
            "--frames",
            str(args.frames),
            "--height",
            str(args.height),
            "--width",
            str(args.width),
            "--steps",
            str(args.steps),
            "--decode-chunk-size",
            str(args.decode_chunk_size),
            "--device",
            args.device,
            *(["--offload"] if args.offload else []),
            *(["--fold"] if args.fold else []),
        ]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {result['dtype']} | {result['parameters'] / 1e9:.2f} B | {result['step_s']:.1f} | "
            f"{'-' if result['later_step_s'] is None else format(result['later_step_s'], '.1f')} | "
            f"{result['decode_s']:.1f} | {result['resident_gib']:.2f} | {result['peak_gib']:.2f} | "
            f"{result['estimate_gib']:.2f} | {result['peak_gib'] - result['resident_gib']:.2f} | "
            f"{result['estimate_extra_gib']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
