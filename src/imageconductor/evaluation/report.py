"""Evaluation report: Markdown tables and PNG plots of per-trajectory metrics for one or more runs."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from imageconductor.evaluation.results import SuiteRunResult

__all__ = ["ReportFiles", "markdown_report", "markdown_table", "plot_metrics", "plot_tracks", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    plots: list[Path] = field(default_factory=list)


def _format(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub Markdown table; floats with 2 decimals, NaN/None as "–"."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_format(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary_table(runs: Sequence[SuiteRunResult]) -> str:
    rows = []
    for run in runs:
        s = run.summary()
        rows.append(
            [
                run.label,
                run.suite,
                run.mode,
                f"{s['metric']} {_format(s['motion_error_px'])}",
                s["visible_fraction"],
                s["background_path_px"],
                s["background_fraction"],
                s["num_trajectories"],
            ]
        )
    headers = [
        "run",
        "suite",
        "mode",
        "motion error (px)",
        "tracked visible",
        "background path (px)",
        "background / trajectory",
        "trajectories",
    ]
    return markdown_table(headers, rows)


def _run_table(run: SuiteRunResult) -> str:
    headers = [
        "trajectory",
        f"{run.metric} (px)",
        "tracked visible",
        "trajectory path (px)",
        "background path (px)",
        "background / trajectory",
    ]
    rows = [
        [
            r.name,
            r.motion_error_px,
            r.visible_fraction,
            r.trajectory_path_px,
            r.background_path_px,
            r.background_fraction,
        ]
        for r in run.results
    ]
    rows.append(
        [
            "**mean**",
            run.mean("motion_error_px"),
            run.mean("visible_fraction"),
            run.mean("trajectory_path_px"),
            run.mean("background_path_px"),
            run.mean("background_fraction"),
        ]
    )
    return markdown_table(headers, rows)


def markdown_report(runs: Sequence[SuiteRunResult], title: str = "Motion-control evaluation") -> str:
    """The report text: a summary table over runs, then one per-trajectory table per run."""
    parts = [f"# {title}", "", "## Summary", "", _summary_table(runs), ""]
    for run in runs:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(run.settings.items()))
        parts += [f"## {run.label}", ""]
        if settings:
            parts += [f"Settings: {settings}", ""]
        parts += [_run_table(run), ""]
    parts += [
        "ObjMC / CamMC: mean Euclidean distance (pixels of the generated video) between the input "
        "trajectories resampled to the video length and the tracked motion of their first-frame points "
        "(frame 0 excluded; lost points held where last seen). Background path: summed per-step median "
        "motion of a grid of background points; background / trajectory: that path over the mean input "
        "trajectory path length (in object mode: the camera leakage). Means leave out entries shown as –.",
        "",
    ]
    return "\n".join(parts)


def plot_metrics(runs: Sequence[SuiteRunResult], path: str | os.PathLike) -> Path:
    """Grouped bars per trajectory: motion error (top) and background fraction (bottom), one colour per run."""
    names: list[str] = []
    for run in runs:
        names += [r.name for r in run.results if r.name not in names]
    positions = np.arange(len(names))
    width = 0.8 / max(len(runs), 1)
    figure = Figure(figsize=(max(6.0, 0.7 * len(names) + 2), 7))
    top, bottom = figure.subplots(2, 1, sharex=True)
    for index, run in enumerate(runs):
        by_name = {r.name: r for r in run.results}
        errors = [by_name[n].motion_error_px if n in by_name else np.nan for n in names]
        fractions = [by_name[n].background_fraction if n in by_name else np.nan for n in names]
        offset = (index - (len(runs) - 1) / 2) * width
        top.bar(positions + offset, errors, width, label=f"{run.label} ({run.metric})")
        bottom.bar(positions + offset, fractions, width, label=run.label)
    top.set_ylabel("motion error (px)")
    top.legend(fontsize="small")
    top.set_title("Per-trajectory motion control error")
    bottom.set_ylabel("background / trajectory")
    bottom.set_title("Background (global) motion as a fraction of trajectory length")
    bottom.set_xticks(positions, names, rotation=45, ha="right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def plot_tracks(run: SuiteRunResult, path: str | os.PathLike, columns: int = 5) -> Path:
    """One panel per trajectory: input trajectories (dashed) vs tracked motion (solid), image axes."""
    count = max(len(run.results), 1)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for axis, result in zip(axes.ravel(), run.results, strict=False):
        axis.set_axis_on()
        target, tracked = np.asarray(result.target, float), np.asarray(result.tracked, float)
        for k in range(target.shape[1] if target.ndim == 3 else 0):
            line = axis.plot(target[:, k, 0], target[:, k, 1], "--", linewidth=1)[0]
            if tracked.shape == target.shape:
                axis.plot(tracked[:, k, 0], tracked[:, k, 1], "-", color=line.get_color(), linewidth=1.5)
            axis.plot(target[0, k, 0], target[0, k, 1], "o", color=line.get_color(), markersize=3)
        axis.invert_yaxis()
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_title(f"{result.name}: {_format(result.motion_error_px, 1)} px", fontsize="small")
        axis.tick_params(labelsize="x-small")
    figure.suptitle(f"{run.label}: input (dashed) vs tracked (solid)")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=90)
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_") or "run"


def write_report(
    runs: Sequence[SuiteRunResult] | SuiteRunResult,
    out_dir: str | os.PathLike,
    title: str = "Motion-control evaluation",
    track_plots: bool = True,
) -> ReportFiles:
    """Write ``report.md``, ``metrics.png`` and (optionally) one ``tracks_<label>.png`` per run."""
    runs = [runs] if isinstance(runs, SuiteRunResult) else list(runs)
    if not runs:
        raise ValueError("no runs to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_metrics(runs, out_dir / "metrics.png")]
    if track_plots:
        plots += [plot_tracks(run, out_dir / f"tracks_{_slug(run.label)}.png") for run in runs if run.results]
    text = markdown_report(runs, title)
    text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
    markdown = out_dir / "report.md"
    markdown.write_text(text)
    return ReportFiles(markdown, plots)
