"""Does a model move the camera the way the trajectories say? A quick probe on held-out camera clips.

    python research/motion_direction_probe.py src/imageconductor/assets/default_model [OTHER_FOLDER ...]

For each held-out synthetic camera clip, the model generates the video from the clip's first frame,
caption and camera trajectories four ways: the trajectories' flow condition as it is, negated, all
zero, and with trajectory control off (``flow_conditioning_scale=0``). The global shift between each
video's first and last frame is measured by phase correlation (OpenCV) and compared with the clip's
own shift: mean length, mean error, and mean cosine of the direction (1: the right way, 0: unrelated,
-1: the opposite way). A model that follows the trajectories has a cosine near 1 with the condition and
a negative one when it is negated; one that only learned *whether* there is motion gets the length
right and a cosine near 0. Zoom-only clips have almost no shift and add little to the cosine.

``--tracks dense`` builds the condition from all the clip's 16×16 grid tracks instead (as in the dense
phase of training) — for a model trained on dense tracks only, e.g. a base stage that trained the motion
ControlNet along (``model.base.train_flow_controlnet``).

``--motion-guidance M`` samples every variant with trajectory control under motion guidance M
(``motion_guidance_scale``; docs/pipeline.md).

About half a minute per folder on 2 cores (16 clips × 4 videos of 8 frames at 96×64, 25 steps).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The generation variants: name → (factor on the flow condition, flow_conditioning_scale).
VARIANTS = {
    "condition": (1.0, 1.0),
    "negated": (-1.0, 1.0),
    "zero": (0.0, 1.0),
    "control off": (1.0, 0.0),
}


def global_shift(video: np.ndarray) -> np.ndarray:
    """``(dx, dy)`` pixels that the content moves from the first to the last frame of ``video``
    ``(T, H, W, 3)`` uint8, by Hann-windowed phase correlation; ``(nan, nan)`` where it finds no peak (a
    black frame) or one at half the frame or beyond, which a circular correlation cannot tell apart from the
    opposite shift."""
    import cv2

    first, last = (cv2.cvtColor(video[index], cv2.COLOR_RGB2GRAY).astype(np.float32) for index in (0, -1))
    window = cv2.createHanningWindow(first.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(first, last, window)
    height, width = first.shape
    if not (np.isfinite([dx, dy]).all() and response > 0 and abs(dx) < width / 2 and abs(dy) < height / 2):
        return np.array([np.nan, np.nan])
    return np.array([dx, dy])


def direction_summary(shifts: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean length of ``shifts`` (N, 2), mean distance to ``reference`` (N, 2) and mean cosine with it,
    over the rows where both were measured; ``failed`` counts the others."""
    measured = np.isfinite(shifts).all(axis=1) & np.isfinite(reference).all(axis=1)
    shifts, reference = shifts[measured], reference[measured]
    lengths = np.linalg.norm(shifts, axis=1)
    cosine = (shifts * reference).sum(axis=1) / np.maximum(lengths * np.linalg.norm(reference, axis=1), 1e-9)
    mean = (lambda values: float(values.mean())) if measured.any() else (lambda values: float("nan"))
    return {
        "length": mean(lengths),
        "error": mean(np.linalg.norm(shifts - reference, axis=1)),
        "cosine": mean(cosine),
        "failed": int((~measured).sum()),
    }


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The probes' shared options: model folders, held-out seeds, adapter mode and world (read back by
    `clip_settings`)."""
    from imageconductor.cli.common import seed_range

    parser.add_argument("folders", nargs="+", type=Path, help="model folders (save_pretrained)")
    parser.add_argument(
        "--seeds", type=seed_range, default=range(10_000, 10_016), help="held-out clip seeds START:STOP"
    )
    parser.add_argument("--mode", default="camera", help="adapter mode (none for a folder without LoRA)")
    parser.add_argument("--motion-scale", type=float, default=None, help="clip speeds (default: the model's)")
    parser.add_argument(
        "--texture-scale", type=float, default=None, help="background smoothness (default: the model's)"
    )
    parser.add_argument(
        "--sprite-scale", type=float, default=None, help="sprite sizes (default: the model's)"
    )


def clip_settings(folder: Path, args: argparse.Namespace) -> tuple[int, int, int, dict[str, float]]:
    """``(frames, height, width, world)`` of the held-out clips for a model folder: the native size and
    synthetic world its ``model_index.json`` states; ``args.texture_scale`` / ``args.motion_scale`` /
    ``args.sprite_scale`` override the world's (an argument that is missing or None does not)."""
    from imageconductor.evaluation.synthetic_benchmark import warn_if_not_synthetic
    from imageconductor.pipelines import VideoSize, read_model_index, synthetic_world

    warn_if_not_synthetic(folder)
    index = read_model_index(folder)
    size = VideoSize.native(index)
    world = synthetic_world(index)
    for name in world:
        override = getattr(args, name, None)
        world[name] = override if override is not None else world[name]
    return size.num_frames, size.height, size.width, world


def dense_condition(seed: int, flow_encoding, frames: int, height: int, width: int, world: dict):
    """The flow condition ``(1, 2, F, H, W)`` of all 16×16 grid tracks of held-out camera clip ``seed``."""
    from imageconductor.synthetic import random_clip_spec, render_clip
    from imageconductor.trajectories import flow_condition_from_dense, grid_points

    spec = random_clip_spec(seed, kind="camera", num_frames=frames, width=width, height=height, **world)
    positions, visible = render_clip(spec).track_points(grid_points(width, height, 16), frame=0)
    return flow_condition_from_dense(positions, height, width, visible, **flow_encoding.as_kwargs())


@dataclass
class CameraClips:
    """A model folder's pipeline with its held-out camera clips and each clip's own global shift."""

    pipe: Any
    cases: list
    reference: np.ndarray  # (N, 2)
    frames: int
    height: int
    width: int
    world: dict[str, float]

    def trajectory_conditions(self) -> list:
        """Each clip's flow condition ``(1, 2, F, H, W)`` from the suite's camera trajectories."""
        size = (self.frames, self.height, self.width)
        return [
            self.pipe.prepare_flow_condition(case.trajectories.rescaled(self.width, self.height), *size)
            for case in self.cases
        ]


def load_camera_clips(folder: Path, args: argparse.Namespace) -> CameraClips:
    """The pipeline of ``folder`` and the held-out camera clips of ``args.seeds`` in its world."""
    from imageconductor.evaluation.cases import synthetic_clip_suite
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline

    frames, height, width, world = clip_settings(folder, args)
    _, cases = synthetic_clip_suite("camera", args.seeds, frames, width, height, **world)
    pipe = ImageConductorPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    reference = np.array([global_shift(case.reference) for case in cases])
    return CameraClips(pipe, cases, reference, frames, height, width, world)


def summary_cells(summary: dict[str, float]) -> str:
    """The length / error / cosine cells of one table row (the cosine cell names clips left out)."""
    failed = f" ({summary['failed']} clips unmeasured)" if summary.get("failed") else ""
    return f"{summary['length']:.2f} | {summary['error']:.2f} | {summary['cosine']:+.2f}{failed}"


def main(argv: list[str] | None = None) -> int:
    from imageconductor.cli.common import non_negative_float

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(parser)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance-scale", type=float, default=1.0)
    parser.add_argument(
        "--motion-guidance", type=non_negative_float, default=1.0, help="motion guidance scale"
    )
    parser.add_argument(
        "--tracks",
        choices=("trajectories", "dense"),
        default="trajectories",
        help="condition from the suite's few camera trajectories (default) or all grid tracks of the clip",
    )
    args = parser.parse_args(argv)

    import torch

    print("| model | video | shift length px | error vs the clip px | direction cosine |")
    print("|---|---|---|---|---|")
    for folder in args.folders:
        clips = load_camera_clips(folder, args)
        frames, height, width, pipe, cases = clips.frames, clips.height, clips.width, clips.pipe, clips.cases
        rows = {"the clip itself": clips.reference}
        if args.tracks == "dense":
            conditions = [
                dense_condition(int(seed), pipe.flow_encoding, frames, height, width, clips.world)
                for seed in args.seeds
            ]
        else:
            conditions = clips.trajectory_conditions()
        for name, (factor, scale) in VARIANTS.items():
            shifts = []
            for case, condition in zip(cases, conditions, strict=True):
                with torch.no_grad():
                    video = pipe(
                        prompt=case.prompt,
                        image=case.image,
                        flow_condition=condition * factor,
                        mode=args.mode,
                        num_frames=frames,
                        height=height,
                        width=width,
                        num_inference_steps=args.steps,
                        guidance_scale=args.guidance_scale,
                        motion_guidance_scale=args.motion_guidance,
                        flow_conditioning_scale=scale,
                        generator=torch.Generator().manual_seed(0),
                        output_type="np",
                    ).frames[0]
                shifts.append(global_shift(np.round(video * 255).astype(np.uint8)))
            rows[name] = np.array(shifts)
        for name, shifts in rows.items():
            print(
                f"| {folder} | {name} | {summary_cells(direction_summary(shifts, clips.reference))} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
