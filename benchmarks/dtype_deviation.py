"""How far bfloat16 (and float16 where it runs) lands from float32 on the official-tiny fixture.

Runs the fixture's two-step guided sampling in float32 and in each other dtype from the same inputs and
prints ``max |latents_dtype - latents_fp32| / max |latents_fp32|`` of the final latents.

    python benchmarks/dtype_deviation.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from official_tiny import load_official_tiny, official_tiny_sampling_inputs  # noqa: E402


def final_latents(dtype: torch.dtype) -> torch.Tensor:
    """The fixture's two-step latents with every network in ``dtype``, as float32."""
    pipe = load_official_tiny(dtype)
    return pipe(**official_tiny_sampling_inputs(steps=2), output_type="latent").frames.float()


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
