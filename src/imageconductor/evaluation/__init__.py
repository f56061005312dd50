"""Evaluation: motion-control metrics (ObjMC, CamMC, background motion), the paper's camera and object
suites, a runner that generates and scores videos, reports, and FID / FVD from user-supplied networks.

Quick use::

    from imageconductor.evaluation import load_suite, objmc, background_motion

    error = objmc(frames, trajectories)          # frames (T, H, W, 3) uint8; trajectories: TrajectorySet
    error.mean_px                                # mean pixel distance, tracked vs input
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "objmc": "motion_metrics",
    "cammc": "motion_metrics",
    "motion_control_error": "motion_metrics",
    "trajectory_distance": "motion_metrics",
    "background_motion": "motion_metrics",
    "background_motion_fraction": "motion_metrics",
    "EvaluationError": "motion_metrics",
    "MotionControlError": "motion_metrics",
    "BackgroundMotion": "motion_metrics",
    "track": "tracking",
    "build_tracker": "tracking",
    "frechet_distance": "frechet",
    "frechet_distance_from_features": "frechet",
    "feature_statistics": "frechet",
    "fid": "frechet",
    "fvd": "frechet",
    "InceptionFeatureExtractor": "frechet",
    "I3DFeatureExtractor": "frechet",
    "load_suite": "suites",
    "EvaluationSuite": "suites",
    "SuiteError": "suites",
    "EvalCase": "cases",
    "cases_from_image": "cases",
    "synthetic_cases": "cases",
    "synthetic_clip_suite": "cases",
    "PipelineGenerator": "runner",
    "evaluate_video": "runner",
    "run_suite": "runner",
    "SuiteRunResult": "results",
    "TrajectoryResult": "results",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Submodules load on first use, so `import imageconductor.evaluation` stays light.
    if name in _EXPORTS:
        module = importlib.import_module(f"imageconductor.evaluation.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'imageconductor.evaluation' has no attribute {name!r}")
