"""Cost of one noise prediction per guidance layout, with the official-tiny weights on CPU.

Prints seconds per ``predict_noise`` call (median) for, in one run:

* ``cfg``          - plain classifier-free guidance rows [negative/object, positive/object] (baseline);
* ``camera_free``  - camera-free guidance rows [empty/none, positive/none, positive/object] in ONE call
  (image-ControlNet work shared between the two positive rows: 2 image rows, 3 flow rows, 3 UNet rows);
* ``separate``     - the same three rows as three single-row calls (no sharing, three UNet calls).

Target: camera_free <= 1.6 x cfg.

    python benchmarks/models_predict_noise.py [--frames 16 --height 256 --width 384 --repeats 3 --threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

DEFAULT_FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official_tiny"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per layout (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    weights = args.fixture / "official-weights"
    if not weights.is_dir():
        print(f"official-tiny fixture not found at {args.fixture} (pass --fixture)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    from safetensors.torch import load_file

    from imageconductor.conditioning import image_condition
    from imageconductor.models import load_official_components, predict_noise

    parts = load_official_components(
        args.fixture / "sd15-tiny",
        weights / "unet.ckpt",
        weights / "image_controlnet.ckpt",
        weights / "flow_controlnet.ckpt",
    )
    models = (parts.unet, parts.image_controlnet, parts.flow_controlnet)
    step = load_file(str(args.fixture / "single_step.safetensors"))
    positive, negative, empty = (
        step["prompt_embeds"],
        step["negative_prompt_embeds"],
        step["empty_prompt_embeds"],
    )
    generator = torch.Generator().manual_seed(0)
    h, w = args.height // 8, args.width // 8
    latents = torch.randn(1, 4, args.frames, h, w, generator=generator)
    image = image_condition(torch.randn(1, 4, 1, h, w, generator=generator), args.frames)
    flow = 1e-3 * torch.randn(1, 2, args.frames, args.height, args.width, generator=generator)
    timestep = torch.tensor([801])

    def cfg() -> None:
        rows = latents.repeat(2, 1, 1, 1, 1)
        predict_noise(*models, rows, timestep, torch.cat([negative, positive]), image, flow, ["object"] * 2)

    def camera_free() -> None:
        rows = latents.repeat(3, 1, 1, 1, 1)
        texts = torch.cat([empty, positive, positive])
        predict_noise(*models, rows, timestep, texts, image, flow, ["none", "none", "object"])

    def separate() -> None:
        for text, adapter in ((empty, "none"), (positive, "none"), (positive, "object")):
            predict_noise(*models, latents, timestep, text, image, flow, [adapter])

    layouts = {"cfg": cfg, "camera_free": camera_free, "separate": separate}
    times: dict[str, list[float]] = {name: [] for name in layouts}
    with torch.no_grad():
        for run in layouts.values():
            run()  # warm-up
        for _ in range(args.repeats):  # interleaved, so load changes hit every layout alike
            for name, run in layouts.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)

    base = statistics.median(times["cfg"])
    print(
        f"predict_noise on CPU ({args.threads} threads), official-tiny weights, {args.frames} frames "
        f"{args.height}x{args.width}, median of {args.repeats}"
    )
    print(f"{'layout':<14}{'s/call':>10}{'x cfg':>8}")
    for name in layouts:
        median = statistics.median(times[name])
        print(f"{name:<14}{median:>10.3f}{median / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
