"""Example trajectory files shipped with the package (``imageconductor/assets/trajectories``)."""

from __future__ import annotations

from importlib import resources

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.format import TrajectorySet, load_trajectories


def _examples_dir():
    return resources.files("imageconductor").joinpath("assets", "trajectories")


def list_example_trajectories() -> list[str]:
    """Names (file stems) of the bundled example trajectory files."""
    return sorted(
        entry.name[: -len(".json")] for entry in _examples_dir().iterdir() if entry.name.endswith(".json")
    )


def example_trajectories(name: str) -> TrajectorySet:
    """Load a bundled example by name, e.g. ``example_trajectories("camera_pan_left")``."""
    names = list_example_trajectories()
    if name not in names:
        raise TrajectoryError(f"no example trajectory {name!r}; available: {', '.join(names)}")
    return load_trajectories(_examples_dir().joinpath(f"{name}.json").read_text(encoding="utf-8"))
