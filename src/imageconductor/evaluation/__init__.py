"""Evaluation: motion-control metrics (ObjMC, CamMC, background motion), the paper's camera and object
suites, a runner that generates and scores videos, reports, and FID / FVD from user-supplied networks.

Quick use::

    from imageconductor.evaluation import load_suite, objmc, background_motion

    error = objmc(frames, trajectories)          # frames (T, H, W, 3) uint8; trajectories: TrajectorySet
    error.mean_px                                # mean pixel distance, tracked vs input
"""

from __future__ import annotations

from imageconductor.evaluation.cases import (
    EvalCase,
    cases_from_image,
    synthetic_cases,
    synthetic_clip_suite,
)
from imageconductor.evaluation.frechet import (
    I3DFeatureExtractor,
    InceptionFeatureExtractor,
    feature_statistics,
    fid,
    frechet_distance,
    frechet_distance_from_features,
    fvd,
)
from imageconductor.evaluation.motion_metrics import (
    BackgroundMotion,
    EvaluationError,
    MotionControlError,
    background_motion,
    background_motion_fraction,
    cammc,
    motion_control_error,
    objmc,
    trajectory_distance,
)
from imageconductor.evaluation.report import (
    write_report,
)
from imageconductor.evaluation.results import (
    SuiteRunResult,
    TrajectoryResult,
)
from imageconductor.evaluation.runner import (
    PipelineGenerator,
    evaluate_video,
    run_suite,
)
from imageconductor.evaluation.suites import (
    EvaluationSuite,
    SuiteError,
    load_suite,
)
from imageconductor.evaluation.tracking import (
    build_tracker,
    track,
)

__all__ = [
    "BackgroundMotion",
    "EvalCase",
    "EvaluationError",
    "EvaluationSuite",
    "I3DFeatureExtractor",
    "InceptionFeatureExtractor",
    "MotionControlError",
    "PipelineGenerator",
    "SuiteError",
    "SuiteRunResult",
    "TrajectoryResult",
    "background_motion",
    "background_motion_fraction",
    "build_tracker",
    "cammc",
    "cases_from_image",
    "evaluate_video",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "frechet_distance_from_features",
    "fvd",
    "load_suite",
    "motion_control_error",
    "objmc",
    "run_suite",
    "synthetic_cases",
    "synthetic_clip_suite",
    "track",
    "trajectory_distance",
    "write_report",
]
