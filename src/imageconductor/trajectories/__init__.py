"""Trajectories: JSON formats and validation, PCHIP resampling, the flow condition, presets, sampling.

The main entry points::

    from imageconductor.trajectories import load_trajectories, flow_condition

    trajectories = load_trajectories("tracks.json")           # validated TrajectorySet
    condition = flow_condition(trajectories, 16, 256, 384)     # (1, 2, 16, 256, 384) float32

See ``docs/trajectories.md`` for the file formats.
"""

from __future__ import annotations

from imageconductor.trajectories.errors import TrajectoryError
from imageconductor.trajectories.examples import example_trajectories, list_example_trajectories
from imageconductor.trajectories.file_formats import TRAJECTORY_FORMATS, TrajectoryFormat
from imageconductor.trajectories.flow import (
    OFFICIAL_BLUR_SIGMA,
    OFFICIAL_KERNEL_SIZE,
    RELEASED_FLOW_ENCODING,
    FlowEncoding,
    blur_parameters,
    check_dense_tracks,
    displacement_maps,
    displacement_maps_from_dense,
    flow_condition,
    flow_condition_from_dense,
    gaussian_blur_maps,
    gaussian_kernel,
)
from imageconductor.trajectories.format import (
    DEFAULT_IMAGE_SIZE,
    FORMAT_VERSION,
    MAX_TRACKS,
    TRACK_KINDS,
    TrajectorySet,
    load_trajectories,
    parse_trajectories,
    save_trajectories,
)
from imageconductor.trajectories.grid import grid_points
from imageconductor.trajectories.presets import CAMERA_PRESETS, camera_preset, camera_trajectories
from imageconductor.trajectories.resample import resample_track
from imageconductor.trajectories.sparse import motion_intensity, sample_sparse_tracks

__all__ = [
    "CAMERA_PRESETS",
    "DEFAULT_IMAGE_SIZE",
    "FORMAT_VERSION",
    "FlowEncoding",
    "MAX_TRACKS",
    "OFFICIAL_BLUR_SIGMA",
    "OFFICIAL_KERNEL_SIZE",
    "RELEASED_FLOW_ENCODING",
    "TRACK_KINDS",
    "TRAJECTORY_FORMATS",
    "TrajectoryError",
    "TrajectoryFormat",
    "TrajectorySet",
    "blur_parameters",
    "camera_preset",
    "camera_trajectories",
    "check_dense_tracks",
    "displacement_maps",
    "displacement_maps_from_dense",
    "example_trajectories",
    "flow_condition",
    "flow_condition_from_dense",
    "gaussian_blur_maps",
    "gaussian_kernel",
    "grid_points",
    "list_example_trajectories",
    "load_trajectories",
    "motion_intensity",
    "parse_trajectories",
    "resample_track",
    "sample_sparse_tracks",
    "save_trajectories",
]
