"""This project's pipeline beside the authors' released one: seconds per step, peak memory, agreement.

Runs the released pipeline (from a copy of the authors' repository, in its own Python environment:
docs/pipeline.md, "Benchmarks against the released code") and this project's pipeline on the same
weights (the official-tiny fixture by default: random weights of the released architecture), the same
inputs (prompt, negative prompt, initial latents, first-frame latents, flow condition of two fixed
tracks) and the same size (16 x 256 x 384 by default, the released one), with DDIM, CFG 7.5 and one
adapter mode. Every run is a fresh process (``benchmarks/vs_official_worker.py``) that loads the model,
samples ``--steps`` steps and decodes the video frame by frame; a step's time is the wall-clock between
two step callbacks, so the first step (text encoding, set-up) is not timed. Each round runs both
implementations, alternating which goes first, so a neighbour's load on a shared machine hits both.

Memory: peak RSS is each process's VmHWM at its end, so it includes the imports, the model load, the
sampling and the decoding; also reported are the RSS after loading and the sampling steps' peak above
it (the kernel's peak count is reset after loading); each is the highest of the rounds. Correctness:
the final latents of the two implementations (same round, same inputs) must agree to 5e-4 of their
magnitude.

    python benchmarks/vs_official.py                       # this project only
    python benchmarks/vs_official.py --official-code /work/official-code \\
        --official-python /work/official-env/bin/python [--rounds 2 --profile --json figures.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "vs_official_worker.py"
DEFAULT_FIXTURE = REPO / "tests" / "fixtures" / "official_tiny"
SIDES = ("official", "ours")
TOLERANCE = 5e-4
PROMPT = "a red car drives along a coastal road"
NEGATIVE_PROMPT = "blurry, low quality"

sys.path[:0] = [str(REPO / "src"), str(WORKER.parent)]  # this checkout's code, as the worker runs it
from vs_official_worker import read_result, save_inputs  # noqa: E402

# --- pure helpers -------------------------------------------------------------------------------------


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One implementation's figures from its runs' records (one per round): the median s/step over all
    timed steps, each round's median, and the highest of the rounds' memory figures (MiB)."""
    steps = [seconds for record in records for seconds in record["step_s"]]
    return {
        "median_s_per_step": statistics.median(steps),
        "round_medians": [statistics.median(record["step_s"]) for record in records],
        "step_s": steps,
        "peak_rss_mib": max(record["peak_rss_mib"] for record in records),
        "rss_after_load_mib": max(record["rss_after_load_mib"] for record in records),
        "step_peak_above_load_mib": max(
            record["sampling_peak_mib"] - record["rss_after_load_mib"] for record in records
        ),
    }


def format_ratio(ours: float, official: float) -> str:
    """``ours / official`` as ``"0.97x"``; ``"n/a"`` when the official figure is not positive."""
    return f"{ours / official:.2f}x" if official > 0 else "n/a"


def relative_difference(ours, official) -> float:
    """``max |ours - official| / max |official|`` of two tensors (inf for differing shapes)."""
    if tuple(ours.shape) != tuple(official.shape):
        return float("inf")
    scale = float(official.abs().max())
    return float((ours - official).abs().max()) / (scale if scale > 0 else 1.0)


def run_order(round_index: int, sides: tuple[str, ...]) -> tuple[str, ...]:
    """The sides of one round: as given in even rounds, reversed in odd ones."""
    return sides if round_index % 2 == 0 else tuple(reversed(sides))


# --- set-up -------------------------------------------------------------------------------------------


def _tracks(width: int, height: int) -> list[list[list[float]]]:
    """Two fixed tracks in the model frame: one to the lower right, one upwards."""
    return [
        [[0.2 * width, 0.3 * height], [0.5 * width, 0.4 * height], [0.6 * width, 0.6 * height]],
        [[0.7 * width, 0.8 * height], [0.65 * width, 0.5 * height], [0.6 * width, 0.2 * height]],
    ]


def write_inputs(path: Path, args: argparse.Namespace) -> None:
    """The shared inputs: seeded initial and first-frame latents, this project's flow condition."""
    import torch

    from imageconductor.trajectories import flow_condition

    generator = torch.Generator().manual_seed(args.seed)
    h, w = args.height // 8, args.width // 8
    tensors = {
        "latents": torch.randn(1, 4, args.frames, h, w, generator=generator),
        "image_latents": torch.randn(1, 4, 1, h, w, generator=generator),
        "flow_condition": flow_condition(
            _tracks(args.width, args.height), args.frames, args.height, args.width
        ),
    }
    settings = {
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE_PROMPT,
        "frames": args.frames,
        "height": args.height,
        "width": args.width,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "mode": args.mode,
    }
    save_inputs(path, tensors, settings)


def write_official_base(fixture: Path, destination: Path) -> Path:
    """An SD1.5 folder for the released ``from_pretrained_2d``, which reads only ``unet/config.json`` and
    ``unet/diffusion_pytorch_model.bin``: the fixture's UNet, saved in that form."""
    import torch
    from safetensors.torch import load_file

    unet = destination / "unet"
    unet.mkdir(parents=True, exist_ok=True)
    (unet / "config.json").write_text((fixture / "sd15-tiny" / "unet" / "config.json").read_text())
    state = load_file(str(fixture / "sd15-tiny" / "unet" / "diffusion_pytorch_model.safetensors"))
    torch.save(state, unet / "diffusion_pytorch_model.bin")
    return destination


def _run_worker(side: str, args: argparse.Namespace, scratch: Path, name: str, profile: bool = False):
    """One fresh worker process; returns ``(record, tensors)`` or raises ``RuntimeError`` with its output."""
    output = scratch / f"{name}.safetensors"
    command = [
        "--side",
        side,
        "--inputs",
        str(scratch / "inputs.safetensors"),
        "--output",
        str(output),
        "--fixture",
        str(args.fixture),
        "--threads",
        str(args.threads),
    ]
    environment = dict(os.environ)
    if side == "official":
        python, cwd = str(args.official_python), args.official_code
        command += ["--official-code", str(args.official_code), "--official-base", str(scratch / "sd15")]
        environment.pop("PYTHONPATH", None)
    else:
        python, cwd = str(args.ours_python or sys.executable), REPO
        paths = [str(REPO / "src"), environment.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    if profile:
        command.append("--profile")
    if side == "ours" and args.compile:
        command.append("--compile")
    done = subprocess.run(
        [python, str(WORKER), *command], cwd=cwd, env=environment, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{side} worker failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return read_result(output)


# --- report -------------------------------------------------------------------------------------------


def _table(figures: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"{'implementation':<16}{'s/step':>9}  {'round medians, s':<22}{'peak RSS MiB':>13}"
        f"{'RSS after load MiB':>20}{'step peak above load MiB':>26}"
    ]
    for side, summary in figures.items():
        rounds = ", ".join(f"{value:.3f}" for value in summary["round_medians"])
        lines.append(
            f"{side:<16}{summary['median_s_per_step']:>9.3f}  {rounds:<22}{summary['peak_rss_mib']:>13.0f}"
            f"{summary['rss_after_load_mib']:>20.0f}{summary['step_peak_above_load_mib']:>26.0f}"
        )
    return lines


def _profile_lines(side: str, profile: dict[str, Any]) -> list[str]:
    lines = [f"profile of one step, {side} (top ops by self CPU time):"]
    lines += [
        f"  {op['name'][:52]:<52}{op['self_cpu_s']:>9.3f} s{op['calls']:>8} calls"
        for op in profile["top_ops"]
    ]
    lines.append(
        f"  {side}: attention {profile['attention_s']:.2f} s of {profile['wall_s']:.2f} s "
        f"({profile['attention_s'] / profile['wall_s']:.0%}; attention layers incl. projections)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-code", type=Path, help="copy of the authors' repository")
    parser.add_argument("--official-python", type=Path, help="Python of the official environment")
    parser.add_argument(
        "--ours-python",
        type=Path,
        help="Python of an environment with only this project's dependencies (default: this one); a "
        "development environment with extra packages imports more and holds more memory",
    )
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="official-tiny fixture folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--steps", type=int, default=4, help="DDIM steps per run; the first is not timed")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs every implementation once")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--mode", choices=("object", "camera"), default="object")
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also profile one step of each under torch")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="this project's networks through torch.compile (its compile time is the first, untimed step's)",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if (args.official_code is None) != (args.official_python is None):
        parser.error("--official-code and --official-python go together")
    if args.steps < 2 or args.rounds < 1:
        parser.error("--steps must be at least 2 (the first is not timed) and --rounds at least 1")
    if not (args.fixture / "official-weights").is_dir():
        parser.error(f"no official-tiny fixture at {args.fixture}")
    official = args.official_code is not None
    sides = SIDES if official else ("ours",)

    print(
        f"vs_official: {args.frames} frames {args.height}x{args.width}, {args.steps} DDIM steps per run "
        f"(the first not timed), CFG {args.guidance_scale}, {args.mode} mode, {args.threads} threads, "
        f"weights {args.fixture.name}, {args.rounds} rounds ({' / '.join(sides)}, alternating order)"
    )
    if not official:
        print("official copy not given (--official-code, --official-python): this project's figures only")
    print("each run is a fresh process; peak RSS = its VmHWM at exit (imports, load, sampling, decoding)")
    records: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    differences: list[dict[str, float]] = []
    profiles: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vs-official-") as folder:
        scratch = Path(folder)
        write_inputs(scratch / "inputs.safetensors", args)
        if official:
            write_official_base(args.fixture, scratch / "sd15")
        try:
            for round_index in range(args.rounds):
                tensors = {}
                for side in run_order(round_index, sides):
                    record, tensors[side] = _run_worker(side, args, scratch, f"{side}-{round_index}")
                    records[side].append(record)
                if official:
                    differences.append(
                        {
                            name: relative_difference(tensors["ours"][name], tensors["official"][name])
                            for name in ("latents", "video")
                        }
                    )
            if args.profile:
                for side in sides:
                    record, _ = _run_worker(side, args, scratch, f"{side}-profile", profile=True)
                    profiles[side] = record["profile"]
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1

    figures = {side: summarize(records[side]) for side in sides}
    print()
    print("\n".join(_table(figures)))
    if args.compile:
        first = [record["first_step_s"] for record in records["ours"]]
        print(
            f"ours compiled with torch.compile: first step (compiling) {', '.join(f'{s:.0f}' for s in first)} s"
        )
    result: dict[str, Any] = {
        "settings": vars(args) | {"sides": list(sides)},
        "figures": figures,
        "runs": records,
    }
    agree = True
    if official:
        ours, theirs = figures["ours"], figures["official"]
        result["ratios"] = {
            "s_per_step": ours["median_s_per_step"] / theirs["median_s_per_step"],
            "peak_rss": ours["peak_rss_mib"] / theirs["peak_rss_mib"],
        }
        print(
            f"ours / official: {format_ratio(ours['median_s_per_step'], theirs['median_s_per_step'])} s/step, "
            f"{format_ratio(ours['peak_rss_mib'], theirs['peak_rss_mib'])} peak RSS"
        )
        latents = max(difference["latents"] for difference in differences)
        video = max(difference["video"] for difference in differences)
        agree = latents <= TOLERANCE
        result["agreement"] = {"rounds": differences, "tolerance": TOLERANCE, "agree": agree}
        print(
            f"final latents: max |ours - official| / max |official| = {latents:.1e} "
            f"(decoded video {video:.1e}; tolerance {TOLERANCE:.0e}): "
            + ("agree" if agree else "DISAGREE - the timings compare different computations")
        )
    if any(not record["peak_reset"] for side in sides for record in records[side]):
        print("note: the peak-RSS count could not be reset; step peaks include loading")
    for side in sides:
        if side in profiles:
            print()
            print("\n".join(_profile_lines(side, profiles[side])))
    if profiles:
        result["profiles"] = profiles
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
