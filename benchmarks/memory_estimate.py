"""`estimate_request_memory` against the measured peak on the official-tiny fixture.

Each request runs in a fresh process: the pipeline is loaded and warmed up on a small request, the peak
resident memory is reset (Linux ``clear_refs``), and the peak while the request samples and decodes minus
the resident memory before it is what its activations cost. The weights part of the estimate is exact (a
parameter count, see ``tests/test_pipeline_memory.py``); the script prints the activation part next to
the measurement and their ratio.

    python benchmarks/memory_estimate.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from full_size_inference import peak_rss, reset_peak_rss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from official_tiny import OFFICIAL_TINY, load_official_tiny  # noqa: E402

#: (frames, height, width, guidance rows: 2 = CFG, 3 = camera-free guidance)
REQUESTS = ((16, 256, 384, 2), (16, 256, 384, 3), (8, 512, 768, 2))


def measure(frames: int, height: int, width: int, rows: int) -> dict:
    """Load the fixture pipeline and run one 1-step request; the activations measured and estimated."""
    import torch

    from imageconductor.pipelines.memory import estimate_request_memory, official_parameter_counts

    pipe = load_official_tiny()
    generator = torch.Generator().manual_seed(0)
    warm_up = {"num_frames": 2, "height": 64, "width": 96, "num_inference_steps": 1, "output_type": "pt"}
    pipe(prompt="a rose", image=torch.rand(3, 64, 96), trajectories=[[[10, 10], [20, 20]]], **warm_up)
    baseline = reset_peak_rss()
    pipe(
        prompt="a rose",
        image_latents=torch.randn(1, 4, 1, height // 8, width // 8, generator=generator),
        flow_condition=torch.randn(1, 2, frames, height, width, generator=generator),
        num_inference_steps=1,
        guidance_scale=7.5,
        camera_free_guidance=1.5 if rows == 3 else None,
        output_type="pt",
    )
    peak = peak_rss()
    estimate = estimate_request_memory(
        official_parameter_counts(OFFICIAL_TINY / "sd15-tiny"),
        pipe.unet.config,
        pipe.vae.config,
        frames,
        height,
        width,
        guidance_rows=rows,
    )
    return {"measured": peak - baseline, "estimate": estimate.activations}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    print("| request (frames x H x W, rows) | measured activations MiB | estimated activations MiB | ratio |")
    print("|---|---|---|---|")
    for request in REQUESTS:
        command = [sys.executable, __file__, "--one", *map(str, request)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        mib = 1024**2
        print(
            f"| {request[0]} x {request[1]} x {request[2]}, {request[3]} | {result['measured'] / mib:.0f} | "
            f"{result['estimate'] / mib:.0f} | {result['measured'] / result['estimate']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
