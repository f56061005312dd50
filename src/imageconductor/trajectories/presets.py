"""Camera-motion presets: pans, zooms and their combinations as ready-made tracks.

Names follow the paper's usage, the direction in which the drawn points move (an upward trajectory
"pans up" with the camera LoRA, Fig. 6): ``pan_left`` moves every point left by ``magnitude`` pixels
over the clip; ``zoom_in`` moves points away from the image centre in proportion to their distance
(the picture grows by the factor ``1 + magnitude``); ``zoom_out`` is its exact reverse.
Components combine with ``+`` (``"pan_left+zoom_in"``) and may carry their own magnitude
(``"pan_left:40+zoom_in:0.2"``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.format import TrajectorySet
from imageconductor.trajectories.grid import grid_points
from imageconductor.trajectories.resample import check_num_frames

PAN_DIRECTIONS: dict[str, tuple[float, float]] = {
    "pan_left": (-1.0, 0.0),
    "pan_right": (1.0, 0.0),
    "pan_up": (0.0, -1.0),
    "pan_down": (0.0, 1.0),
}
ZOOMS = ("zoom_in", "zoom_out")
CAMERA_PRESETS = (*PAN_DIRECTIONS, *ZOOMS)
DEFAULT_ZOOM = 0.25
"""Default zoom magnitude: the picture grows by 25 % over the clip (zoom_in)."""
DEFAULT_PAN_FRACTION = 1 / 6
"""Default pan magnitude as a fraction of the image width (horizontal) or height (vertical)."""


#: Most points per track of a preset (the released model renders 16 frames).
MAX_PRESET_FRAMES = 1024
#: Most tracks of a preset grid (32 x 32).
MAX_PRESET_GRID_POINTS = 1024


def default_magnitude(component: str, height: int, width: int) -> float:
    """Default magnitude of one preset component: pans in pixels, zooms as a relative scale change."""
    if component in ZOOMS:
        return DEFAULT_ZOOM
    direction = PAN_DIRECTIONS[component]
    return DEFAULT_PAN_FRACTION * (width if direction[0] else height)


def _positive(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TrajectoryError(f"{where}: magnitude is {value!r}; expected a number")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise TrajectoryError(f"{where}: magnitude is {value}; expected a finite number >= 0")
    return value


def parse_preset_name(
    name: str, height: int, width: int, magnitude: float | Mapping[str, float] | None = None
) -> dict[str, float]:
    """Split ``"pan_left:40+zoom_in"`` into ``{component: magnitude}`` with defaults filled in."""
    if not isinstance(name, str) or not name.strip():
        raise TrajectoryError(
            f"camera preset name is {name!r}; expected e.g. 'pan_left' or 'pan_left+zoom_in'"
        )
    components: dict[str, float | None] = {}
    for part in name.lower().replace("-", "_").replace(" ", "").split("+"):
        component, _, inline = part.partition(":")
        if component not in CAMERA_PRESETS:
            raise TrajectoryError(
                f"unknown camera preset {component!r} in {name!r}; known: {', '.join(CAMERA_PRESETS)}"
            )
        if component in components:
            raise TrajectoryError(f"camera preset {component!r} appears twice in {name!r}")
        if inline:
            try:
                components[component] = _positive(float(inline), component)
            except ValueError:
                raise TrajectoryError(f"{component}: magnitude {inline!r} is not a number") from None
        else:
            components[component] = None
    if sum(c in ZOOMS for c in components) > 1:
        raise TrajectoryError(f"{name!r} zooms in and out at once; choose one")
    pans = [c for c in components if c in PAN_DIRECTIONS]
    for first, second in (("pan_left", "pan_right"), ("pan_up", "pan_down")):
        if first in pans and second in pans:
            raise TrajectoryError(f"{name!r} pans {first[4:]} and {second[4:]} at once; choose one")
    if isinstance(magnitude, Mapping):
        unknown = sorted(set(magnitude) - set(components))
        if unknown:
            raise TrajectoryError(f"magnitude given for {unknown}, which {name!r} does not contain")
    elif magnitude is not None and pans and any(c in ZOOMS for c in components):
        raise TrajectoryError(
            f"one magnitude for {name!r} is ambiguous (pans are in pixels, zooms relative); "
            "pass a mapping such as {'pan_left': 40, 'zoom_in': 0.2} or write 'pan_left:40+zoom_in:0.2'"
        )
    resolved = {}
    for component, inline in components.items():
        if inline is not None:
            resolved[component] = inline
        elif isinstance(magnitude, Mapping) and component in magnitude:
            resolved[component] = _positive(magnitude[component], component)
        elif magnitude is not None and not isinstance(magnitude, Mapping):
            resolved[component] = _positive(magnitude, component)
        else:
            resolved[component] = default_magnitude(component, height, width)
    return resolved


def _grid(grid: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Cell centres of a columns x rows grid, without the point at the image centre."""
    columns, rows = grid
    for name, value in (("columns", columns), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise TrajectoryError(f"grid {name} is {value!r}; expected a positive whole number")
    if columns * rows > MAX_PRESET_GRID_POINTS:
        raise TrajectoryError(
            f"grid {columns}x{rows} has {columns * rows} points; a preset has at most {MAX_PRESET_GRID_POINTS}"
        )
    points = grid_points(width, height, columns, rows)
    centre = np.array([width / 2, height / 2])
    points = points[~np.all(np.isclose(points, centre), axis=1)]
    if len(points) == 0:
        raise TrajectoryError("the grid has no point other than the image centre; use a larger grid")
    return points


def camera_preset(
    name: str,
    num_frames: int = 16,
    height: int = 256,
    width: int = 384,
    magnitude: float | Mapping[str, float] | None = None,
    grid: tuple[int, int] = (3, 3),
) -> list[np.ndarray]:
    """Tracks ``(num_frames, 2)`` for a camera motion such as ``"pan_left"`` or ``"pan_left+zoom_in"``.

    Args:
        name: one of :data:`CAMERA_PRESETS` or several joined by ``+``, each optionally ``:magnitude``.
        magnitude: pans — total shift in pixels over the clip (default 1/6 of the width or height);
            zooms — relative growth of the picture (default 0.25: ``zoom_in`` ends 1.25x larger,
            ``zoom_out`` ends 1/1.25x). A number applies to every component (only when all are pans or
            all zooms); a mapping gives one per component.
        grid: ``(columns, rows)`` of points, laid out at the middle of the clip over the image (the
            point at the image centre is left out: a 3x3 grid gives 8 tracks). The layout shrinks
            towards the centre as needed to keep every point inside the image for the whole clip.

    Raises:
        TrajectoryError: unknown or conflicting names, bad magnitudes, or motion too large to fit.
    """
    num_frames = check_num_frames(num_frames)
    if num_frames > MAX_PRESET_FRAMES:
        raise TrajectoryError(
            f"num_frames is {num_frames}; a preset has at most {MAX_PRESET_FRAMES} points per track"
        )
    for label, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise TrajectoryError(f"{label} is {value!r}; expected a whole number >= 2")
    components = parse_preset_name(name, height, width, magnitude)
    shift = np.zeros(2)
    final_scale = 1.0
    for component, amount in components.items():
        if component in PAN_DIRECTIONS:
            shift += amount * np.asarray(PAN_DIRECTIONS[component])
        else:
            final_scale = 1.0 + amount if component == "zoom_in" else 1.0 / (1.0 + amount)
    centre = np.array([width / 2, height / 2])
    time = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    scale = 1.0 + (final_scale - 1.0) * time
    middle_scale = 1.0 + (final_scale - 1.0) * 0.5
    nominal = _grid(grid, height, width)
    for fraction in np.linspace(1.0, 0.05, 96):
        middle = centre + fraction * (nominal - centre)
        start = centre + (middle - centre - 0.5 * shift) / middle_scale
        positions = centre + (start - centre) * scale + shift * time
        ends = positions[[0, -1]]
        inside = (
            (ends >= 0).all() and (ends[..., 0] <= width - 1).all() and (ends[..., 1] <= height - 1).all()
        )
        if inside:
            return [positions[:, i].copy() for i in range(positions.shape[1])]
    raise TrajectoryError(
        f"camera preset {name!r} with magnitudes {components} moves too far to fit a {width}x{height} image"
    )


def camera_trajectories(
    name: str,
    num_frames: int = 16,
    height: int = 256,
    width: int = 384,
    magnitude: float | Mapping[str, float] | None = None,
    grid: tuple[int, int] = (3, 3),
    strength: float = 1.0,
) -> TrajectorySet:
    """:func:`camera_preset` as a :class:`TrajectorySet` of kind ``"camera"`` in a width x height frame."""
    tracks = camera_preset(name, num_frames, height, width, magnitude, grid)
    return TrajectorySet(tracks, ["camera"] * len(tracks), [strength] * len(tracks), (width, height))
