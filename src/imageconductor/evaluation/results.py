"""Result records of an evaluation run (one per trajectory, one per suite run), JSON round-trippable."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SuiteRunResult", "TrajectoryResult", "metric_name"]


def metric_name(kind: str) -> str:
    """The motion metric's name for a suite kind: ``"camera"`` → CamMC, ``"object"`` → ObjMC."""
    return {"camera": "CamMC", "object": "ObjMC"}.get(kind, "MC")


@dataclass
class TrajectoryResult:
    """Metrics of one generated video against one input trajectory set.

    ``motion_error_px`` is ObjMC or CamMC (by the suite kind); ``background_path_px`` the
    background's path length (the camera leakage in object mode) and ``background_fraction`` that
    length over the mean input-trajectory path length ``trajectory_path_px``. ``target`` and
    ``tracked`` are (T, K, 2) lists kept for plots.
    """

    name: str
    motion_error_px: float
    visible_fraction: float
    background_path_px: float
    background_fraction: float
    trajectory_path_px: float
    per_frame_error_px: list[float] = field(default_factory=list)
    target: list = field(default_factory=list)
    tracked: list = field(default_factory=list)
    video_path: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> TrajectoryResult:
        return cls(**{k: (math.nan if v is None and k in _FLOAT_FIELDS else v) for k, v in data.items()})


_FLOAT_FIELDS = {
    "motion_error_px",
    "visible_fraction",
    "background_path_px",
    "background_fraction",
    "trajectory_path_px",
}


@dataclass
class SuiteRunResult:
    """All trajectory results of one suite under one generation setting (``label`` names it)."""

    label: str
    suite: str
    kind: str
    mode: str
    settings: dict = field(default_factory=dict)
    results: list[TrajectoryResult] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return metric_name(self.kind)

    def mean(self, attribute: str) -> float:
        """Mean of a numeric TrajectoryResult attribute over the trajectories (NaNs ignored)."""
        values = np.array([getattr(r, attribute) for r in self.results], dtype=np.float64)
        if values.size == 0 or np.isnan(values).all():
            return math.nan
        return float(np.nanmean(values))

    def summary(self) -> dict:
        return {
            "label": self.label,
            "suite": self.suite,
            "mode": self.mode,
            "metric": self.metric,
            "motion_error_px": self.mean("motion_error_px"),
            "visible_fraction": self.mean("visible_fraction"),
            "background_path_px": self.mean("background_path_px"),
            "background_fraction": self.mean("background_fraction"),
            "num_trajectories": len(self.results),
        }

    def to_dict(self) -> dict:
        return _clean(
            {
                "label": self.label,
                "suite": self.suite,
                "kind": self.kind,
                "mode": self.mode,
                "settings": self.settings,
                "summary": self.summary(),
                "results": [r.to_dict() for r in self.results],
            }
        )

    @classmethod
    def from_dict(cls, data: dict) -> SuiteRunResult:
        return cls(
            label=data["label"],
            suite=data["suite"],
            kind=data["kind"],
            mode=data["mode"],
            settings=dict(data.get("settings", {})),
            results=[TrajectoryResult.from_dict(r) for r in data.get("results", [])],
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the run as JSON (atomically: temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SuiteRunResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _clean(value):
    """JSON-safe copy: numpy → Python, NaN/inf → None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
