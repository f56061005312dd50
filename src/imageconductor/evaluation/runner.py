"""Run a video generator over an evaluation suite: generate, track, score, save, report.

A *generator* is any callable ``generate(case) -> frames (T, H, W, 3) uint8``; :class:`PipelineGenerator`
wraps an :class:`~imageconductor.pipelines.image_conductor.ImageConductorPipeline`. Each finished
trajectory is saved at once (``results/NN_name.json`` and, optionally, the MP4) so an interrupted run
resumes where it stopped; the suite result goes to ``run.json`` and the report beside it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from imageconductor.evaluation.cases import EvalCase
from imageconductor.evaluation.motion_metrics import (
    MIN_MOVING_PATH_PX,
    EvaluationError,
    background_motion,
    background_motion_fraction,
    motion_control_error,
    path_length,
)
from imageconductor.evaluation.report import write_report
from imageconductor.evaluation.results import SuiteRunResult, TrajectoryResult
from imageconductor.evaluation.suites import EvaluationSuite
from imageconductor.evaluation.tracking import Tracker
from imageconductor.pipelines.settings import SamplingSettings
from imageconductor.video_io import write_mp4

__all__ = [
    "PipelineGenerator",
    "VideoGenerator",
    "evaluate_video",
    "run_directory",
    "run_suite",
]


VideoGenerator = Callable[[EvalCase], np.ndarray]


@dataclass
class PipelineGenerator:
    """An ImageConductorPipeline as a :data:`VideoGenerator`: one video per case with the same
    `SamplingSettings` (and seed) for every case; ``extra`` keyword arguments go to the pipeline too."""

    pipe: Any
    sampling: SamplingSettings
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if None in (self.sampling.num_frames, self.sampling.height, self.sampling.width):
            raise EvaluationError("PipelineGenerator needs sampling settings with the video size set")

    @property
    def settings(self) -> dict:
        """The generation settings recorded with the results (``motion_guidance_scale`` only when it is
        not 1 and ``scheduler`` only when it is not DDIM, so result folders written before they existed
        still resume)."""
        record = self.sampling.to_record()
        if record["motion_guidance_scale"] == 1.0:
            del record["motion_guidance_scale"]
        if record["scheduler"] == "ddim":
            del record["scheduler"]
        return {**record, **self.extra}

    def __call__(self, case: EvalCase) -> np.ndarray:
        output = self.pipe(
            prompt=case.prompt,
            image=case.image,
            trajectories=case.trajectories.rescaled(self.sampling.width, self.sampling.height),
            output_type="np",
            **self.sampling.pipeline_kwargs(),
            **self.extra,
        )
        frames = np.asarray(output.frames if hasattr(output, "frames") else output[0])[0]
        return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def evaluate_video(
    frames: np.ndarray,
    trajectories: Any,
    kind: str,
    name: str = "video",
    tracker: Tracker | None = None,
    grid_size: int = 16,
    exclusion_radius: float | None = None,
) -> TrajectoryResult:
    """Score one video (T, H, W, 3) uint8 against its input trajectories.

    ``kind`` "object": ObjMC, and the background is measured away from the trajectories' swept
    region; "camera": CamMC, and the background is the whole frame.
    """
    if kind not in ("object", "camera"):
        raise EvaluationError(f"kind must be 'object' or 'camera', got {kind!r}")
    frames = np.asarray(frames)
    error = motion_control_error(frames, trajectories, tracker=tracker)
    background = background_motion(
        frames,
        exclude_trajectories=trajectories if kind == "object" else None,
        grid_size=grid_size,
        exclusion_radius=exclusion_radius,
        tracker=tracker,
    )
    try:
        fraction = background_motion_fraction(background, error.target)
    except EvaluationError:
        fraction = float("nan")  # no input track moves: only stationary anchors
    lengths = path_length(error.target)
    moving = lengths[lengths >= MIN_MOVING_PATH_PX]
    return TrajectoryResult(
        name=name,
        motion_error_px=error.mean_px,
        visible_fraction=error.visible_fraction,
        background_path_px=background.path_px,
        background_fraction=fraction,
        trajectory_path_px=float(moving.mean()) if moving.size else 0.0,
        per_frame_error_px=error.per_frame_px.tolist(),
        target=np.round(error.target, 3).tolist(),
        tracked=np.round(error.tracked, 3).tolist(),
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_") or "run"


def run_directory(out_dir: str | os.PathLike, label: str) -> Path:
    """Where `run_suite` writes the run ``label`` under ``out_dir`` (its saved paths are relative to it)."""
    return Path(out_dir) / _slug(label)


def run_suite(
    suite: EvaluationSuite,
    generate: VideoGenerator,
    cases: Sequence[EvalCase],
    out_dir: str | os.PathLike,
    label: str | None = None,
    mode: str | None = None,
    tracker: Tracker | None = None,
    save_videos: bool = True,
    resume: bool = True,
    report: bool = True,
    progress: bool = True,
    grid_size: int = 16,
    exclusion_radius: float | None = None,
) -> SuiteRunResult:
    """Generate and score one video per case; write ``<out_dir>/<label>/`` (results, videos, report).

    ``mode`` only labels the run (the generator decides what it does; a :class:`PipelineGenerator`'s
    own mode is used when not given). With ``resume``, cases whose result file exists are not redone.
    """
    settings = dict(getattr(generate, "settings", {}))
    mode = str(mode if mode is not None else settings.get("mode", "unknown"))
    label = label or f"{suite.name}-{mode}"
    run_dir = run_directory(out_dir, label)
    results_dir = run_dir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    names = {entry.name for entry in suite}
    unknown = [case.name for case in cases if case.name not in names]
    if unknown:
        raise EvaluationError(f"cases {unknown} are not in suite {suite.name!r}")

    _check_settings(run_dir / "settings.json", {"suite": suite.name, "mode": mode, **settings}, resume)

    run = SuiteRunResult(label=label, suite=suite.name, kind=suite.kind, mode=mode, settings=settings)
    for index, case in enumerate(tqdm(cases, desc=f"evaluate {label}", disable=not progress), start=1):
        stem = f"{index:02d}_{_slug(case.name)}"
        result_path = results_dir / f"{stem}.json"
        if resume and result_path.is_file():
            run.results.append(TrajectoryResult.from_dict(_read_json(result_path)))
            continue
        started = time.perf_counter()
        frames = generate(case)
        result = evaluate_video(
            frames, case.trajectories, suite.kind, case.name, tracker, grid_size, exclusion_radius
        )
        result.seconds = time.perf_counter() - started
        if save_videos:
            (run_dir / "videos").mkdir(exist_ok=True)
            video_path = write_mp4(frames, run_dir / "videos" / f"{stem}.mp4", pad_odd=True)
            result.video_path = str(Path(video_path).relative_to(run_dir))
        _write_json(result_path, result.to_dict())
        run.results.append(result)
    run.save(run_dir / "run.json")
    if report:
        write_report(run, run_dir, title=f"Evaluation: {label}")
    return run


def _check_settings(path: Path, settings: dict, resume: bool) -> None:
    """Refuse to resume a run folder made with other settings (its results would be mixed in)."""
    current = json.loads(json.dumps(settings, sort_keys=True, default=str))
    if resume and path.is_file():
        saved = _read_json(path)
        if saved != current:
            changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            raise EvaluationError(
                f"{path.parent} holds results made with other settings ({', '.join(changed)} differ); "
                "use another label or turn resuming off (--no-resume)"
            )
    _write_json(path, current)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
