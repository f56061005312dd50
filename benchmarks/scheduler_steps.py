"""Steps each scheduler needs to land where a fine DDIM solution lands, on fixed inputs and noise.

The reference is DDIM at ``--reference-steps`` (100) steps. For each scheduler and step count N the same
inputs and initial noise are sampled and the final latents compared with the reference:
``max |latents - reference| / max |reference|`` (and the mean absolute difference over the mean absolute
reference). A second table gives, per scheduler, the fewest steps of the grid whose deviation is at most
DDIM-25's (25 DDIM steps: the released setting).

The official-tiny fixture has random tiny weights: this measures how closely each solver reproduces a fine
DDIM solution of the same guided ODE, not image quality. ``--model default`` runs the same on the
embedded default model (v-prediction, zero-terminal-SNR betas) with its example image and trajectory.

    python benchmarks/scheduler_steps.py                      # official-tiny, 8 frames at 32x48
    python benchmarks/scheduler_steps.py --model default      # the embedded default model, 8 x 64 x 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from imageconductor.pipelines import ImageConductorPipeline, default_model_path
from imageconductor.pipelines.schedulers import SCHEDULER_NAMES, SCHEDULERS, check_scheduler, make_scheduler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from official_tiny import load_official_tiny, official_tiny_sampling_inputs  # noqa: E402

EXAMPLES = ROOT / "src" / "imageconductor" / "assets" / "examples"
DEFAULT_STEPS = (5, 8, 10, 15, 20, 25, 30, 50)
DEFAULT_SCHEDULERS = ("ddim", "dpm++2m", "dpm++2m-karras", "unipc", "euler", "euler-a")


def official_tiny_inputs(pipe: ImageConductorPipeline, frames: int, height: int, width: int) -> dict:
    """The fixture's golden-run inputs (prompt, first-frame latents, flow condition, CFG 7.5) at the asked
    size: resized when it differs from the fixture's 8 x 64 x 128, with seeded initial noise then."""
    inputs = official_tiny_sampling_inputs()
    del inputs["num_inference_steps"]
    if (frames, height, width) != (inputs["num_frames"], inputs["height"], inputs["width"]):
        scale = pipe.vae_scale_factor
        image = inputs["image_latents"][:, :, 0]
        inputs["image_latents"] = F.interpolate(image, size=(height // scale, width // scale), mode="area")[
            :, :, None
        ]
        inputs["flow_condition"] = F.interpolate(
            inputs["flow_condition"], size=(frames, height, width), mode="trilinear"
        )
        noise = torch.Generator().manual_seed(0)
        inputs["latents"] = torch.randn(1, 4, frames, height // scale, width // scale, generator=noise)
    inputs.update(num_frames=frames, height=height, width=width)
    return inputs


def default_model_inputs(pipe: ImageConductorPipeline, frames: int, height: int, width: int) -> dict:
    """The packaged object example (first frame, prompt, trajectory) at the asked size, CFG 7.5, with
    seeded first-frame latents and initial noise."""
    import PIL.Image

    generator = torch.Generator().manual_seed(0)
    image = PIL.Image.open(EXAMPLES / "object_first_frame.png")
    scale = pipe.vae_scale_factor
    return {
        "prompt": (EXAMPLES / "object_prompt.txt").read_text().strip(),
        "image_latents": pipe.encode_image(image, height, width, generator=generator),
        "trajectories": str(EXAMPLES / "object_trajectory.json"),
        "latents": torch.randn(1, 4, frames, height // scale, width // scale, generator=generator),
        "num_frames": frames,
        "height": height,
        "width": width,
        "guidance_scale": 7.5,
    }


def run(
    pipe: ImageConductorPipeline, inputs: dict, scheduler: str | None, steps: int
) -> tuple[torch.Tensor, float]:
    """Final latents of one sampling run with the scheduler ``scheduler`` (None: ``pipe.scheduler``) and its
    seconds (sampling only: the text is encoded already)."""
    started = time.perf_counter()
    latents = pipe(
        **inputs,
        num_inference_steps=steps,
        scheduler=scheduler,
        generator=torch.Generator().manual_seed(1),  # the per-step noise of euler-a
        output_type="latent",
    ).frames
    return latents.float(), time.perf_counter() - started


def deviations(latents: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """``max |x - ref| / max |ref|`` and ``mean |x - ref| / mean |ref|``."""
    difference = (latents - reference).abs()
    return (
        float(difference.max() / reference.abs().max()),
        float(difference.mean() / reference.abs().mean()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("official-tiny", "default"), default="official-tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=None, help="default 32 (official-tiny), 64 (default)")
    parser.add_argument("--width", type=int, default=None, help="default 48 (official-tiny), 96 (default)")
    parser.add_argument(
        "--steps", default=",".join(map(str, DEFAULT_STEPS)), help="step counts, comma-separated"
    )
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument(
        "--guidance-scale", type=float, default=7.5, help="CFG scale (default 7.5, as released)"
    )
    parser.add_argument(
        "--schedulers",
        default=",".join(DEFAULT_SCHEDULERS),
        help=f"comma-separated, of {', '.join(SCHEDULER_NAMES)}",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the tiny networks gain nothing from more)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = sorted({int(n) for n in args.steps.split(",")})
    names = [name.strip() for name in args.schedulers.split(",")]

    if args.model == "official-tiny":
        pipe = load_official_tiny()
        height, width = args.height or 32, args.width or 48
        inputs = official_tiny_inputs(pipe, args.frames, height, width)
        model = "official-tiny fixture (random tiny weights, epsilon prediction, released DDIM settings)"
    else:
        pipe = ImageConductorPipeline.from_pretrained(default_model_path())
        pipe.set_progress_bar_config(disable=True)
        height, width = args.height or 64, args.width or 96
        inputs = default_model_inputs(pipe, args.frames, height, width)
        model = "embedded default model (v-prediction, zero-terminal-SNR betas, trailing timesteps)"
    inputs["guidance_scale"] = args.guidance_scale
    # Encode the text once so that the seconds are the sampling's.
    inputs["prompt_embeds"] = pipe.encode_prompt(inputs.pop("prompt"), pipe.device)
    inputs["negative_prompt_embeds"] = pipe.encode_prompt("", pipe.device)

    config = pipe.scheduler.config
    print(
        f"Model: {model}; {args.frames} frames at {width}x{height}, CFG {inputs['guidance_scale']:g}, "
        f"{config.prediction_type}, timestep spacing {config.timestep_spacing!r}, {args.threads} CPU threads."
    )
    print(
        "On random tiny weights this measures how closely each solver reproduces a fine DDIM solution of "
        "the same guided ODE, not image quality."
        if args.model == "official-tiny"
        else "This measures how closely each solver reproduces a fine DDIM solution, not image quality."
    )
    for name in list(names):
        try:
            check_scheduler(name, config)
        except ValueError as exc:
            print(f"Not run: {exc}.")
            names.remove(name)
    reference, seconds = run(pipe, inputs, "ddim", args.reference_steps)
    print(f"Reference: DDIM {args.reference_steps} steps ({seconds:.1f} s).", flush=True)
    first = config.steps_offset + (args.reference_steps - 1) * (
        config.num_train_timesteps // args.reference_steps
    )
    last = config.num_train_timesteps - 1
    if config.timestep_spacing == "leading" and first != last:
        # The other solvers start at t = 999 ("trailing"); the reference at t = 1001 - 1000 / steps.
        model_scheduler = pipe.scheduler
        pipe.scheduler = make_scheduler("ddim", config, timestep_spacing="trailing")
        trailing, _ = run(pipe, inputs, None, args.reference_steps)
        pipe.scheduler = model_scheduler
        print(
            f'The reference starts at t = {first} ("leading" spacing), the solvers other than DDIM at t = {last} '
            f'("trailing"): DDIM {args.reference_steps} steps from t = {last} deviates from it by '
            f"{deviations(trailing, reference)[0]:.2e}, about the least they can reach.",
            flush=True,
        )
    print()
    print("| scheduler | steps | max deviation | mean deviation | seconds |")
    print("|---|---|---|---|---|")
    table: dict[str, dict[int, tuple[float, float]]] = {}

    def measure(name: str, count: int) -> float:
        """The max deviation of ``name`` at ``count`` steps (run once, then remembered)."""
        if count not in table[name]:
            latents, seconds = run(pipe, inputs, name, count)
            table[name][count] = (deviations(latents, reference)[0], seconds)
        return table[name][count][0]

    for name in names:
        table[name] = {}
        for count in steps:
            latents, seconds = run(pipe, inputs, name, count)
            worst, mean = deviations(latents, reference)
            table[name][count] = (worst, seconds)
            print(f"| {name} | {count} | {worst:.2e} | {mean:.2e} | {seconds:.1f} |", flush=True)
    if "ddim" not in names or 25 not in steps:
        return
    target = table["ddim"][25][0]
    print()
    print(
        f"Steps to reach DDIM-25's max deviation ({target:.2e}): the fewest of the grid, refined by bisection "
        "down to the grid point below (assuming the deviation falls as the steps grow):"
    )
    print()
    print("| scheduler | steps | max deviation there | seconds there |")
    print("|---|---|---|---|")
    for name in names:
        note = " (adds noise per step)" if SCHEDULERS[name].stochastic else ""
        reached = [count for count in steps if table[name][count][0] <= target]
        if name == "ddim":
            reached = [25]
        elif reached:
            low, high = max((count for count in steps if count < reached[0]), default=0), reached[0]
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (low, middle) if measure(name, middle) <= target else (middle, high)
            reached = [high]
        if reached:
            worst, seconds = table[name][reached[0]]
            print(f"| {name}{note} | {reached[0]} | {worst:.2e} | {seconds:.1f} |", flush=True)
        else:
            worst, seconds = table[name][steps[-1]]
            print(f"| {name}{note} | more than {steps[-1]} | {worst:.2e} at {steps[-1]} | |", flush=True)


if __name__ == "__main__":
    main()
