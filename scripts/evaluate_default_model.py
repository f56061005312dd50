"""Measure the embedded default model on held-out synthetic clips (the table of docs/default_model.md).

    python scripts/evaluate_default_model.py [--model DIR] [--ablation NAME=DIR ...] [--seeds 10000:10020]

Every row generates one video per held-out synthetic clip (first frame, caption and exact trajectories
of the clip), tracks it with the project's tracker and scores it (see docs/evaluation.md):

* ObjMC, object clips: ``object`` mode vs trajectory control off (``flow_conditioning_scale=0``: the
  motion ControlNet is not run, the base image-to-video model alone), and the motion ControlNet
  without LoRA (``none``);
* CamMC, camera clips: ``camera`` mode vs control off;
* disentanglement, object clips: background motion as a fraction of the trajectory length under the
  camera LoRA vs under the object LoRA (the same trajectories);
* camera-free guidance, object clips in object mode: λ_traj 1.0 vs 2.0 (camera leakage = background
  fraction);
* reference rows, no diffusion: the held-out clip itself (what the tracker makes of the exact motion:
  the floor of each metric), its first frame held still (what no motion at all scores) and the clip
  through the model's VAE (encoded and decoded: the floor for any model that draws through that VAE);
* ablations: other model folders (``--ablation no-ortho=DIR``) in object mode, or in another mode with
  ``@MODE`` (``--ablation sparse-only=DIR@none`` for a motion ControlNet trained without LoRA stages).

Besides the motion metrics, each row reports the first-frame error: the mean absolute difference (0..255)
between the video's first frame (as saved, MP4) and the input image — how well the model keeps the
image it animates. Results, videos and per-run reports go to ``--out`` (a rerun reuses finished cases);
the Markdown table is printed, written to ``--table`` and, with ``--update-card``, into the model card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rows(ablations: dict[str, tuple[Path, str]]) -> list[dict]:
    rows = [
        {"name": "reference: the held-out clip itself", "suite": "object", "mode": "-", "video": "clip"},
        {"name": "reference: first frame held still", "suite": "object", "mode": "-", "video": "still"},
        {
            "name": "reference: the held-out clip through the VAE",
            "suite": "object",
            "mode": "-",
            "video": "vae",
        },
        {"name": "reference: the held-out clip itself", "suite": "camera", "mode": "-", "video": "clip"},
        {"name": "reference: first frame held still", "suite": "camera", "mode": "-", "video": "still"},
        {
            "name": "reference: the held-out clip through the VAE",
            "suite": "camera",
            "mode": "-",
            "video": "vae",
        },
        {"name": "ObjMC, object mode", "suite": "object", "mode": "object"},
        {"name": "ObjMC, control off", "suite": "object", "mode": "none", "flow_scale": 0.0},
        {"name": "ObjMC, motion ControlNet without LoRA", "suite": "object", "mode": "none"},
        {"name": "CamMC, camera mode", "suite": "camera", "mode": "camera"},
        {"name": "CamMC, control off", "suite": "camera", "mode": "none", "flow_scale": 0.0},
        {"name": "object trajectories, camera LoRA", "suite": "object", "mode": "camera"},
        {"name": "object mode, camera-free λ_traj=1.0", "suite": "object", "mode": "object", "cfg_traj": 1.0},
        {"name": "object mode, camera-free λ_traj=2.0", "suite": "object", "mode": "object", "cfg_traj": 2.0},
    ]
    for label, (folder, mode) in ablations.items():
        rows.append(
            {
                "name": f"ablation {label}: ObjMC, {mode} mode",
                "suite": "object",
                "mode": mode,
                "model": folder,
            }
        )
    return rows


def _reference_video(case):
    """The held-out clip as rendered (exact motion)."""
    return case.reference


def _still_video(case):
    """The first frame repeated for the clip's length (no motion)."""
    import numpy as np

    return np.repeat(case.image[None], len(case.reference), axis=0)


class VaeRoundTrip:
    """The held-out clip encoded and decoded by a VAE: the best any model with that VAE can draw."""

    def __init__(self, vae) -> None:
        self.vae = vae

    def __call__(self, case):
        import numpy as np
        import torch

        frames = torch.from_numpy(case.reference).permute(0, 3, 1, 2).float() / 127.5 - 1
        decoded = self.vae.decode(self.vae.encode(frames).latent_dist.mean).sample
        pixels = (decoded.clamp(-1, 1) + 1) * 127.5
        return pixels.round().permute(0, 2, 3, 1).numpy().astype(np.uint8)


def _first_frame_error(run, cases, run_dir: Path) -> float:
    """Mean absolute difference (0..255) between each saved video's first frame and its input image."""
    import numpy as np

    from imageconductor.video_io import read_video

    errors = []
    for result, case in zip(run.results, cases, strict=True):
        frames, _ = read_video(run_dir / result.video_path, max_frames=1)
        errors.append(np.abs(frames[0].astype(np.float64) - case.image).mean())
    return float(np.mean(errors))


def parse_ablation(item: str) -> tuple[str, str, str]:
    """``NAME=DIR[@MODE]`` as ``(name, folder, mode)``; ``mode`` is "" when not given."""
    name, _, target = item.partition("=")
    folder, _, mode = target.partition("@")
    return name, folder, mode


def build_parser() -> argparse.ArgumentParser:
    """The script's options."""
    from imageconductor.cli import add_motion_guidance_option
    from imageconductor.evaluation.cli import seed_range

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "src/imageconductor/assets/default_model")
    parser.add_argument(
        "--ablation",
        action="append",
        default=[],
        help="NAME=DIR[@MODE] of another model folder (mode: object)",
    )
    parser.add_argument("--seeds", type=seed_range, default=range(10_000, 10_020), help="START:STOP")
    parser.add_argument(
        "--motion-scale",
        type=float,
        default=None,
        help="speeds of the held-out clips (default: the model's own synthetic world)",
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance-scale", type=float, default=7.5, help="text CFG scale (default 7.5)")
    add_motion_guidance_option(parser)  # every row with trajectory control
    parser.add_argument("--out", type=Path, default=Path("eval-default-model"))
    parser.add_argument("--table", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument(
        "--update-card",
        action="store_true",
        help="also write the table into the model card (README.md of --model)",
    )
    return parser


def card_command(args: argparse.Namespace) -> str:
    """The command that measured the card's table, with this machine's folders left out.

    Options left at their defaults are omitted; ablation folders become ``DIR1``, ``DIR2``, ... (their
    modes kept); ``--model``, ``--out`` and ``--table`` are paths of the run, not settings of the
    measurement.
    """
    defaults = build_parser()
    parts = ["python scripts/evaluate_default_model.py", f"--seeds {args.seeds.start}:{args.seeds.stop}"]
    for name in ("motion_scale", "steps", "guidance_scale", "motion_guidance"):
        value = getattr(args, name)
        if value != defaults.get_default(name):
            parts.append(f"--{name.replace('_', '-')} {value:g}")
    for number, item in enumerate(args.ablation, start=1):
        name, _, mode = parse_ablation(item)
        parts.append(f"--ablation {name}=DIR{number}" + (f"@{mode}" if mode else ""))
    parts.append("--update-card")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import torch

    from imageconductor.evaluation.cases import synthetic_clip_suite
    from imageconductor.evaluation.runner import PipelineGenerator, run_directory, run_suite
    from imageconductor.pipelines import MODEL_INFO_FILE, read_model_info
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    ablations = {}
    for item in args.ablation:
        label, folder, mode = parse_ablation(item)
        ablations[label] = (Path(folder), mode or "object")
    info = read_model_info(args.model)
    if not info:
        parser.error(f"{args.model} has no {MODEL_INFO_FILE} (not a make_default model folder)")
    frames, height, width = info["num_frames"], info["height"], info["width"]
    # the synthetic world the model was trained on
    world = {"texture_scale": info.get("texture_scale", 1.0), "motion_scale": info.get("motion_scale", 1.0)}
    if args.motion_scale is not None:
        world["motion_scale"] = args.motion_scale
    suites = {
        kind: synthetic_clip_suite(kind, args.seeds, frames, width, height, **world)
        for kind in ("object", "camera")
    }
    pipes: dict[Path, ImageConductorPipeline] = {}

    def pipeline(folder: Path) -> ImageConductorPipeline:
        if folder not in pipes:
            pipes[folder] = ImageConductorPipeline.from_pretrained(folder)
            pipes[folder].set_progress_bar_config(disable=True)
        return pipes[folder]

    summaries = []
    for row in _rows(ablations):
        suite, cases = suites[row["suite"]]
        label = f"{row['suite']}-{row['name']}".replace(",", "").replace(":", "").replace(" ", "-")
        label = label.replace("λ_traj=", "lt")
        extra = {}
        if "video" in row:
            references = {"clip": _reference_video, "still": _still_video}
            generate = references.get(row["video"]) or VaeRoundTrip(pipeline(args.model).vae)
        else:
            folder = row.get("model", args.model)
            extra["model"] = str(folder)
            generate = PipelineGenerator(
                pipeline(folder),
                mode=row["mode"],
                num_frames=frames,
                height=height,
                width=width,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance_scale,
                camera_free_guidance=row.get("cfg_traj"),
                motion_guidance_scale=args.motion_guidance,
                flow_conditioning_scale=row.get("flow_scale", 1.0),
                seed=0,
            )
        with torch.no_grad():
            result = run_suite(suite, generate, cases, args.out, label=label, mode=row["mode"])
        first_frame = _first_frame_error(result, cases, run_directory(args.out, label))
        summaries.append({**row, **result.summary(), "first_frame_error": first_frame, **extra})
        print(json.dumps(summaries[-1], default=str), flush=True)

    motion_guidance = f", motion guidance {args.motion_guidance:g}" if args.motion_guidance != 1 else ""
    lines = [
        f"Held-out synthetic clips: seeds {args.seeds.start}..{args.seeds.stop - 1} ({len(args.seeds)} per suite), "
        f"{frames} frames at {width}x{height}, motion scale {world['motion_scale']:g}, {args.steps} DDIM steps, CFG {args.guidance_scale:g}{motion_guidance}, seed 0; pixels of the "
        f"{width}x{height} frame.",
        "",
        "| row | suite | mode | motion error px (ObjMC / CamMC) | background motion / trajectory length | "
        "visible fraction | first-frame error /255 |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['name']} | {s['suite']} | {s['mode']} | {s['motion_error_px']:.2f} | "
            f"{s['background_fraction']:.2f} | {s['visible_fraction']:.2f} | {s['first_frame_error']:.1f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "summaries.json").write_text(json.dumps(summaries, indent=1, default=str))
    if args.table:
        args.table.write_text(table)
    if args.update_card:
        from imageconductor.training.make_default import write_card_metrics

        write_card_metrics(args.model, table, card_command(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
