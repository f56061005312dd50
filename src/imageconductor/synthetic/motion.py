"""Camera and object motion paths with known, analytic positions per frame.

Coordinates: *scene* coordinates are the pixel coordinates of frame 0 (x right, y down, pixel centres
at integers, OpenCV's convention). The camera at frame ``t`` is the similarity transform

    image_t(x) = zoom_t * (x - centre_t) + view_centre,     view_centre = ((W - 1) / 2, (H - 1) / 2),

with ``centre_0 = view_centre`` and ``zoom_0 = 1`` (frame 0 is the identity). "The camera pans right"
means the view moves right over the scene, so the scene's content slides left in the image; "zoom in"
means ``zoom_t`` grows above 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "OBJECT_PATHS",
    "SPEED_PROFILES",
    "CameraMotion",
    "ObjectMotion",
    "camera_matrices",
    "ease",
]

SPEED_PROFILES: tuple[str, ...] = ("linear", "ease_in", "ease_out", "ease_in_out")
OBJECT_PATHS: tuple[str, ...] = ("static", "line", "curve", "zigzag", "stop")


def ease(profile: str, progress: np.ndarray) -> np.ndarray:
    """Map time progress in [0, 1] to path progress in [0, 1] (monotone, 0 -> 0 and 1 -> 1)."""
    s = np.clip(np.asarray(progress, dtype=np.float64), 0.0, 1.0)
    if profile == "linear":
        return s
    if profile == "ease_in":
        return s * s
    if profile == "ease_out":
        return 1.0 - (1.0 - s) ** 2
    if profile == "ease_in_out":
        return s * s * (3.0 - 2.0 * s)
    raise ValueError(f"unknown speed profile {profile!r}; choose from {', '.join(SPEED_PROFILES)}")


def _time_progress(num_frames: int) -> np.ndarray:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_frames == 1:
        return np.zeros(1)
    return np.arange(num_frames) / (num_frames - 1)


@dataclass(frozen=True)
class CameraMotion:
    """Camera path over a clip: the view pans by ``pan`` (dx, dy) scene pixels in total and its zoom goes
    from 1 to ``zoom`` (geometrically), both following the speed ``profile``."""

    pan: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    profile: str = "linear"

    def __post_init__(self) -> None:
        if self.zoom <= 0:
            raise ValueError(f"camera zoom must be positive, got {self.zoom}")
        ease(self.profile, np.zeros(1))  # validates the profile name
        object.__setattr__(self, "pan", (float(self.pan[0]), float(self.pan[1])))

    @property
    def is_static(self) -> bool:
        return self.pan == (0.0, 0.0) and self.zoom == 1.0

    def centres_and_zooms(self, num_frames: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """View centre in scene coordinates (T, 2) and zoom (T,) for every frame."""
        progress = ease(self.profile, _time_progress(num_frames))
        view_centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        centres = view_centre[None, :] + progress[:, None] * np.asarray(self.pan)[None, :]
        zooms = self.zoom**progress
        return centres, zooms

    def to_dict(self) -> dict:
        return asdict(self)


def camera_matrices(camera: CameraMotion, num_frames: int, width: int, height: int) -> np.ndarray:
    """Scene-to-image affine matrices (T, 2, 3) of ``camera`` for a ``width x height`` view."""
    centres, zooms = camera.centres_and_zooms(num_frames, width, height)
    view_centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    matrices = np.zeros((num_frames, 2, 3))
    matrices[:, 0, 0] = zooms
    matrices[:, 1, 1] = zooms
    matrices[:, :, 2] = view_centre[None, :] - zooms[:, None] * centres
    return matrices


def _polyline_point(vertices: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Points at arc-length ``fraction`` in [0, 1] along the polyline through ``vertices`` (K, 2)."""
    lengths = np.linalg.norm(np.diff(vertices, axis=0), axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    total = cumulative[-1]
    if total == 0:
        return np.repeat(vertices[:1], len(fraction), axis=0)
    target = np.clip(fraction, 0, 1) * total
    segment = np.clip(np.searchsorted(cumulative, target, side="right") - 1, 0, len(lengths) - 1)
    within = (target - cumulative[segment]) / np.maximum(lengths[segment], 1e-12)
    return vertices[segment] + within[:, None] * (vertices[segment + 1] - vertices[segment])


@dataclass(frozen=True)
class ObjectMotion:
    """Path of one sprite's anchor, as offsets from its start in scene pixels.

    ``path``: "static"; "line" (straight to ``displacement``); "curve" (quadratic arc whose middle bulges
    sideways by ``bend`` times the distance, sign picks the side); "zigzag" (``zigzags`` legs swinging
    ``amplitude`` pixels either side of the straight line); "stop" (moves along the line only during
    the time fractions outside ``pause`` = (begin, end); end = 1 means it stops for good).
    """

    path: str = "static"
    displacement: tuple[float, float] = (0.0, 0.0)
    profile: str = "linear"
    bend: float = 0.0
    zigzags: int = 4
    amplitude: float = 0.0
    pause: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if self.path not in OBJECT_PATHS:
            raise ValueError(f"unknown object path {self.path!r}; choose from {', '.join(OBJECT_PATHS)}")
        ease(self.profile, np.zeros(1))
        if self.path == "zigzag" and self.zigzags < 2:
            raise ValueError(f"a zigzag needs at least 2 legs, got zigzags={self.zigzags}")
        begin, end = self.pause
        if self.path == "stop" and not 0.0 < begin < end <= 1.0:
            raise ValueError(f"pause must satisfy 0 < begin < end <= 1, got {self.pause}")
        object.__setattr__(self, "displacement", (float(self.displacement[0]), float(self.displacement[1])))
        object.__setattr__(self, "pause", (float(begin), float(end)))

    @property
    def is_static(self) -> bool:
        return self.path == "static" or self.displacement == (0.0, 0.0)

    def _path_progress(self, num_frames: int) -> np.ndarray:
        time = _time_progress(num_frames)
        if self.path != "stop":
            return ease(self.profile, time)
        begin, end = self.pause
        moving = 1.0 - (end - begin)
        # Moving time elapsed, rescaled to [0, 1]: the clock freezes during the pause.
        elapsed = np.minimum(time, begin) + np.maximum(time - end, 0.0)
        return ease(self.profile, elapsed / moving)

    def offsets(self, num_frames: int) -> np.ndarray:
        """Offsets (T, 2) of the anchor from its start position in every frame."""
        if self.is_static:
            return np.zeros((num_frames, 2))
        progress = self._path_progress(num_frames)
        target = np.asarray(self.displacement)
        distance = float(np.linalg.norm(target))
        normal = np.array([-target[1], target[0]]) / distance
        if self.path in ("line", "stop"):
            return progress[:, None] * target[None, :]
        if self.path == "curve":
            control = 0.5 * target + 2.0 * self.bend * distance * normal
            u = progress[:, None]
            return 2.0 * u * (1.0 - u) * control[None, :] + u * u * target[None, :]
        legs = self.zigzags
        sides = np.where(np.arange(legs + 1) % 2 == 1, 1.0, -1.0)
        sides[0] = sides[-1] = 0.0
        vertices = (np.arange(legs + 1) / legs)[:, None] * target[None, :] + (sides * self.amplitude)[
            :, None
        ] * normal[None, :]
        return _polyline_point(vertices, progress)

    def to_dict(self) -> dict:
        return asdict(self)
