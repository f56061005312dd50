"""Seconds per sampling step and peak memory: plain CFG vs camera-free guidance (batched vs sequential).

Runs on CPU with the official-tiny weights (random weights of the released architecture) at a size
where the timings mean something (default 16 frames at 128x192: ~2 s per CFG step on one core,
dominated by the spatial attention; ``--height 256 --width 384`` is the released size, ~10x slower).
Three variants:

* ``cfg``             — the released sampler: one batched call over rows [negative, positive];
* ``camera_free``     — Eq. 5, one batched call over rows [∅/none, c/none, c/object] (the pipeline);
* ``camera_free_seq`` — Eq. 5 evaluated naively: three separate noise predictions per step (baseline);
* ``cfg_motion``      — CFG plus motion guidance (scale 2): rows [negative, positive, positive / control
  off]; the third row runs the UNet only, no flow ControlNet.

Timing: one process loads the model once and measures the variants round-robin (round after round),
so a neighbour's load on a shared machine hits every variant alike; each figure is the median over
rounds of one step's wall-clock and process-CPU seconds. Memory: each variant runs one step in a fresh
process and reports that step's peak resident set size (the kernel's peak count is reset after loading),
and how much it exceeds the RSS after loading (the step's working memory).

Target: camera_free <= 1.55 x cfg per step (three UNet rows instead of two: 1.5 x the FLOPs, less where rows
share work, see imageconductor.models.attention);
cfg_motion below camera_free (its extra row skips the flow ControlNet).

    python benchmarks/guidance_speed.py [--frames 16 --height 128 --width 192 --rounds 3 --threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from official_tiny import load_official_tiny  # noqa: E402

DEFAULT_FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official_tiny"
VARIANTS = ("cfg", "camera_free", "camera_free_seq", "cfg_motion")
TRAJ_SCALE = 1.5
MOTION_GUIDANCE = 2.0


def _status_mib(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: peak since start or the last reset), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: peak since start


def _reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS count (Linux: write 5 to /proc/self/clear_refs), if possible."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _load(fixture: Path):
    return load_official_tiny(fixture=fixture)


def _inputs(args: argparse.Namespace) -> dict:
    import torch

    from imageconductor.trajectories import flow_condition

    generator = torch.Generator().manual_seed(0)
    h, w = args.height // 8, args.width // 8
    tracks = [
        [[0.2 * args.width, 0.3 * args.height], [0.5 * args.width, 0.4 * args.height]],
        [[0.7 * args.width, 0.8 * args.height], [0.6 * args.width, 0.2 * args.height]],
    ]
    return {
        "prompt": "a red car drives along a coastal road",
        "negative_prompt": "blurry, low quality",
        "image_latents": torch.randn(1, 4, 1, h, w, generator=generator),
        "flow_condition": flow_condition(tracks, args.frames, args.height, args.width),
        "latents": torch.randn(1, 4, args.frames, h, w, generator=generator),
        "num_frames": args.frames,
        "height": args.height,
        "width": args.width,
        "guidance_scale": 7.5,
    }


def _pipeline_steps(
    pipe, inputs: dict, steps: int, camera_free: float | None, motion_guidance: float = 1.0
) -> list[tuple[float, float]]:
    """``steps`` sampling steps through the pipeline; (wall, cpu) of every step after the first."""
    stamps: list[tuple[float, float]] = []

    def stamp(pipeline, index, timestep, tensors):
        stamps.append(_clock())
        return {}

    pipe(
        **inputs,
        mode="object",
        camera_free_guidance=camera_free,
        motion_guidance_scale=motion_guidance,
        num_inference_steps=steps,
        output_type="latent",
        callback_on_step_end=stamp,
    )
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps, stamps[1:], strict=False)]


def _sequential_steps(pipe, inputs: dict, steps: int) -> list[tuple[float, float]]:
    """Eq. 5 with three separate single-row noise predictions per step (the naive baseline)."""
    import torch

    from imageconductor.conditioning import image_condition
    from imageconductor.models import predict_noise

    device = torch.device("cpu")
    cond = pipe.encode_prompt(inputs["prompt"], device)
    uncond = pipe.encode_prompt(inputs["negative_prompt"], device)
    image_cond = image_condition(inputs["image_latents"], inputs["num_frames"])
    flow = inputs["flow_condition"]
    models = (pipe.unet, pipe.image_controlnet, pipe.flow_controlnet)
    scale = inputs["guidance_scale"]
    pipe.scheduler.set_timesteps(steps)
    latents = inputs["latents"].clone()
    times = []
    with torch.no_grad():
        for timestep in pipe.scheduler.timesteps:
            start = _clock()
            base_uncond = predict_noise(*models, latents, timestep, uncond, image_cond, flow, ["none"])
            base_cond = predict_noise(*models, latents, timestep, cond, image_cond, flow, ["none"])
            traj_cond = predict_noise(*models, latents, timestep, cond, image_cond, flow, ["object"])
            eps = base_uncond + scale * (base_cond - base_uncond) + TRAJ_SCALE * (traj_cond - base_cond)
            latents = pipe.scheduler.step(eps, timestep, latents).prev_sample
            end = _clock()
            times.append((end[0] - start[0], end[1] - start[1]))
    return times[1:]


def _steps(variant: str, pipe, inputs: dict, steps: int) -> list[tuple[float, float]]:
    if variant == "cfg":
        return _pipeline_steps(pipe, inputs, steps, camera_free=None)
    if variant == "camera_free":
        return _pipeline_steps(pipe, inputs, steps, camera_free=TRAJ_SCALE)
    if variant == "cfg_motion":
        return _pipeline_steps(pipe, inputs, steps, camera_free=None, motion_guidance=MOTION_GUIDANCE)
    return _sequential_steps(pipe, inputs, steps)


def _memory_worker(variant: str, args: argparse.Namespace, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    pipe = _load(args.fixture)
    inputs = _inputs(args)
    loaded = _status_mib("VmRSS")
    _reset_peak_rss()  # so the peak is the sampling step's, not the transient peak of loading
    _steps(variant, pipe, inputs, steps=1)
    queue.put((loaded, _status_mib("VmHWM")))


def _peak_memory(variant: str, args: argparse.Namespace) -> tuple[float, float]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_memory_worker, args=(variant, args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="official-tiny fixture folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (each: one step per variant)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if not (args.fixture / "official-weights").is_dir():
        print(f"official-tiny fixture not found at {args.fixture} (pass --fixture)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"guidance speed on CPU ({args.threads} threads): {args.frames} frames {args.height}x{args.width}, "
        f"official-tiny weights, median of {args.rounds} round-robin rounds (after a warm-up round)"
    )
    pipe = _load(args.fixture)
    inputs = _inputs(args)
    times: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    for round_index in range(args.rounds + 1):
        for variant in VARIANTS:
            # Two steps per call: the first also pays for text encoding and set-up and is not counted.
            step = _steps(variant, pipe, inputs, steps=2)
            if round_index:
                times[variant].extend(step)
    memory = {variant: _peak_memory(variant, args) for variant in VARIANTS}

    def median(variant: str, column: int) -> float:
        return statistics.median(sample[column] for sample in times[variant])

    base_wall, base_cpu = median("cfg", 0), median("cfg", 1)
    print(
        f"{'variant':<17}{'wall s/step':>12}{'x CFG':>7}{'CPU s/step':>12}{'x CFG':>7}"
        f"{'peak RSS MiB':>14}{'step MiB':>10}"
    )
    for variant in VARIANTS:
        wall, cpu = median(variant, 0), median(variant, 1)
        loaded, peak = memory[variant]
        print(
            f"{variant:<17}{wall:>12.3f}{wall / base_wall:>7.2f}{cpu:>12.3f}{cpu / base_cpu:>7.2f}"
            f"{peak:>14.0f}{peak - loaded:>10.0f}"
        )
    print(
        f"camera-free / CFG = {median('camera_free', 0) / base_wall:.2f}x wall, "
        f"{median('camera_free', 1) / base_cpu:.2f}x CPU (target <= 1.55x; three rows instead of two: 1.5x)"
    )
    print(
        f"CFG + motion guidance / CFG = {median('cfg_motion', 0) / base_wall:.2f}x wall, "
        f"{median('cfg_motion', 1) / base_cpu:.2f}x CPU (target: below camera-free)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
