"""Regular grids of points: the cell centres that tracking, presets and the metrics start from."""

from __future__ import annotations

import numpy as np

__all__ = ["grid_points"]


def grid_points(width: float, height: float, columns: int = 16, rows: int | None = None) -> np.ndarray:
    """``(rows * columns, 2)`` float64 ``(x, y)`` centres of the cells of a ``columns x rows`` grid over a
    ``width x height`` frame, row-major (``rows`` defaults to ``columns``)."""
    rows = columns if rows is None else rows
    if columns < 1 or rows < 1:
        raise ValueError(f"a grid needs at least one column and one row, got {columns}x{rows}")
    xs = (np.arange(columns) + 0.5) * (width / columns)
    ys = (np.arange(rows) + 0.5) * (height / rows)
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
