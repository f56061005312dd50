"""A model measured on held-out clips of the synthetic world it was trained on (the model card's table).

Every row generates one video per held-out synthetic clip (first frame, caption and exact trajectories
of the clip), tracks it and scores it (``docs/evaluation.md``):

* ObjMC, object clips: ``object`` mode vs trajectory control off (``flow_conditioning_scale=0``: the base
  image-to-video model alone) and the motion ControlNet without LoRA (``none``);
* CamMC, camera clips: ``camera`` mode vs control off;
* disentanglement, object clips: background motion as a fraction of the trajectory length under the
  camera LoRA vs under the object LoRA (the same trajectories);
* camera-free guidance, object clips in object mode: λ_traj 1.0 vs 2.0 (camera leakage);
* reference rows, no diffusion: the clip itself (what the tracker makes of the exact motion: each metric's
  floor), its first frame held still (a still video: what no motion at all scores) and the clip through the
  model's VAE (encoded and decoded: the floor of any model that draws through that VAE);
* ablations: other model folders, in object mode or another mode.

Each row also reports the first-frame error: the mean absolute difference (0..255) between the video's
first frame (as saved, MP4) and the input image.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imageconductor.evaluation.cases import EvalCase, synthetic_clip_suite
from imageconductor.evaluation.results import SuiteRunResult
from imageconductor.evaluation.runner import PipelineGenerator, run_directory, run_suite
from imageconductor.pipelines import (
    ImageConductorPipeline,
    SamplingSettings,
    VideoSize,
    read_model_index,
    synthetic_world,
)
from imageconductor.video_io import read_video

logger = logging.getLogger(__name__)

__all__ = [
    "Ablation",
    "BenchmarkResult",
    "BenchmarkRow",
    "VaeRoundTrip",
    "benchmark_rows",
    "first_frame_error",
    "format_table",
    "run_synthetic_benchmark",
    "still_video",
]


@dataclass(frozen=True)
class Ablation:
    """Another model folder measured in the object suite with ``mode``."""

    name: str
    folder: Path
    mode: str = "object"


@dataclass(frozen=True)
class BenchmarkRow:
    """One row of the table: a suite, a mode and how its videos are made."""

    name: str
    suite: str
    mode: str
    reference: str | None = None  # "clip", "still" or "vae": no diffusion
    flow_scale: float = 1.0
    camera_free_guidance: float | None = None
    model: Path | None = None  # an ablation's folder; None: the measured model

    @property
    def label(self) -> str:
        """The run's folder name under the output folder."""
        text = f"{self.suite}-{self.name}".replace(",", "").replace(":", "").replace(" ", "-")
        return text.replace("λ_traj=", "lt")


def benchmark_rows(ablations: Sequence[Ablation] = ()) -> list[BenchmarkRow]:
    """The rows of the table, references first, then each ablation."""
    rows = []
    for suite in ("object", "camera"):
        rows += [
            BenchmarkRow("reference: the held-out clip itself", suite, "-", reference="clip"),
            BenchmarkRow("reference: first frame held still", suite, "-", reference="still"),
            BenchmarkRow("reference: the held-out clip through the VAE", suite, "-", reference="vae"),
        ]
    rows += [
        BenchmarkRow("ObjMC, object mode", "object", "object"),
        BenchmarkRow("ObjMC, control off", "object", "none", flow_scale=0.0),
        BenchmarkRow("ObjMC, motion ControlNet without LoRA", "object", "none"),
        BenchmarkRow("CamMC, camera mode", "camera", "camera"),
        BenchmarkRow("CamMC, control off", "camera", "none", flow_scale=0.0),
        BenchmarkRow("object trajectories, camera LoRA", "object", "camera"),
        BenchmarkRow("object mode, camera-free λ_traj=1.0", "object", "object", camera_free_guidance=1.0),
        BenchmarkRow("object mode, camera-free λ_traj=2.0", "object", "object", camera_free_guidance=2.0),
    ]
    for ablation in ablations:
        rows.append(
            BenchmarkRow(
                f"ablation {ablation.name}: ObjMC, {ablation.mode} mode",
                "object",
                ablation.mode,
                model=ablation.folder,
            )
        )
    return rows


def still_video(case: EvalCase) -> np.ndarray:
    """The first frame repeated for the clip's length: a still video."""
    return np.repeat(case.image[None], len(case.reference), axis=0)


class VaeRoundTrip:
    """The held-out clip encoded and decoded by a VAE: the best any model with that VAE can draw."""

    def __init__(self, vae: Any) -> None:
        self.vae = vae

    def __call__(self, case: EvalCase) -> np.ndarray:
        frames = torch.from_numpy(case.reference).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            decoded = self.vae.decode(self.vae.encode(frames).latent_dist.mean).sample
        pixels = (decoded.clamp(-1, 1) + 1) * 127.5
        return pixels.round().permute(0, 2, 3, 1).numpy().astype(np.uint8)


def first_frame_error(run: SuiteRunResult, cases: Sequence[EvalCase], run_dir: Path) -> float:
    """Mean absolute difference (0..255) between each saved video's first frame and its input image."""
    errors = []
    for result, case in zip(run.results, cases, strict=True):
        frames, _ = read_video(run_dir / result.video_path, max_frames=1)
        errors.append(np.abs(frames[0].astype(np.float64) - case.image).mean())
    return float(np.mean(errors))


@dataclass
class _Pipelines:
    """Model folders loaded once each."""

    loaded: dict[Path, ImageConductorPipeline] = field(default_factory=dict)

    def __call__(self, folder: Path) -> ImageConductorPipeline:
        if folder not in self.loaded:
            pipe = ImageConductorPipeline.from_pretrained(folder)
            pipe.set_progress_bar_config(disable=True)
            self.loaded[folder] = pipe
        return self.loaded[folder]


def warn_if_not_synthetic(model: Path) -> None:
    """Log a warning, before anything is loaded, when ``model`` states no synthetic world: its held-out
    clips then take the world's defaults and the released 16x256x384 size, which is slow and measures a
    model on clips unlike its training data."""
    index = read_model_index(model)
    if index.get("synthetic_world") is None:
        size = VideoSize.native(index)
        logger.warning(
            "%s states no synthetic_world in its model_index.json (not trained on the synthetic world, or an "
            "exported stage from before stages recorded it): its clips use texture, motion and sprite scale 1 at "
            "%dx%dx%d",
            model,
            size.num_frames,
            size.height,
            size.width,
        )


def run_synthetic_benchmark(
    model: str | os.PathLike,
    seeds: Iterable[int],
    sampling: SamplingSettings,
    out_dir: str | os.PathLike,
    ablations: Sequence[Ablation] = (),
    motion_scale: float | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BenchmarkResult:
    """Measure ``model`` (a saved pipeline folder trained on the synthetic world) on the held-out clips of
    ``seeds``, one run per row of `benchmark_rows`, at the model's native size; ``sampling`` gives the
    steps and guidance scales (its mode, size and flow scale are set per row). Finished cases under
    ``out_dir`` are reused. Each row's summary is also passed to ``on_row`` as it finishes."""
    model = Path(model)
    warn_if_not_synthetic(model)
    pipelines = _Pipelines()
    config = pipelines(model).config
    size = VideoSize.native(config)
    clip_world = synthetic_world(config)
    if motion_scale is not None:
        clip_world["motion_scale"] = motion_scale
    seeds = list(seeds)
    suites = {
        kind: synthetic_clip_suite(kind, seeds, size.num_frames, size.width, size.height, **clip_world)
        for kind in ("object", "camera")
    }
    summaries = []
    for row in benchmark_rows(ablations):
        suite, cases = suites[row.suite]
        extra: dict[str, Any] = {}
        if row.reference is not None:
            references = {"clip": lambda case: case.reference, "still": still_video}
            generate = references.get(row.reference) or VaeRoundTrip(pipelines(model).vae)
        else:
            folder = row.model or model
            extra["model"] = str(folder)
            row_sampling = replace(
                sampling.with_size(size),
                mode=row.mode,
                camera_free_guidance=row.camera_free_guidance,
                flow_conditioning_scale=row.flow_scale,
            )
            generate = PipelineGenerator(pipelines(folder), row_sampling)
        with torch.no_grad():
            result = run_suite(suite, generate, cases, out_dir, label=row.label, mode=row.mode)
        error = first_frame_error(result, cases, run_directory(out_dir, row.label))
        summary = {
            "name": row.name,
            "suite": row.suite,
            "mode": row.mode,
            **result.summary(),
            "first_frame_error": error,
            **extra,
        }
        summaries.append(summary)
        if on_row is not None:
            on_row(summary)
    Path(out_dir, "summaries.json").write_text(json.dumps(summaries, indent=1, default=str))
    return BenchmarkResult(summaries, seeds, size, sampling, clip_world["motion_scale"])


@dataclass(frozen=True)
class BenchmarkResult:
    """The rows' summaries and the settings they were measured with."""

    summaries: list[dict[str, Any]]
    seeds: list[int]
    size: VideoSize
    sampling: SamplingSettings
    motion_scale: float

    def table(self) -> str:
        """The Markdown table, with a line stating the settings."""
        return format_table(self.summaries, self.seeds, self.size, self.sampling, self.motion_scale)


def format_table(
    summaries: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    size: VideoSize,
    sampling: SamplingSettings,
    motion_scale: float,
) -> str:
    """The Markdown table of benchmark summaries with a line stating the settings."""
    seeds = list(seeds)
    guided = sampling.motion_guidance_scale != 1
    motion = f", motion guidance {sampling.motion_guidance_scale:g}" if guided else ""
    sampler = "DDIM" if sampling.scheduler == "ddim" else sampling.scheduler
    lines = [
        f"Held-out synthetic clips: seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} per suite), {size.num_frames} "
        f"frames at {size.width}x{size.height}, motion scale {motion_scale:g}, {sampling.num_inference_steps} "
        f"{sampler} steps, CFG {sampling.guidance_scale:g}{motion}, seed {sampling.seed}; pixels of the "
        f"{size.width}x{size.height} frame.",
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
    return "\n".join(lines) + "\n"
