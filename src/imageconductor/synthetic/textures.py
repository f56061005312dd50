"""Procedural scene textures: multi-octave value noise coloured by a palette, with blobs and lines.

The textures are aperiodic (every octave is an independent random lattice) and carry detail at every
scale down to a few pixels, so pyramidal Lucas-Kanade finds gradients everywhere, while hue and
saturation vary slowly, so consecutive frames of one scene look alike to a content-based cut detector
and two scenes with different palettes do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = ["SceneStyle", "fractal_noise", "random_scene_style", "scene_texture", "value_noise"]


@dataclass(frozen=True)
class SceneStyle:
    """Palette and texture knobs of a background scene.

    ``base_hue`` is in degrees; ``hue_spread`` is how far (degrees) hue wanders around it across the
    scene; ``saturation`` and ``brightness`` are in [0, 1]; ``contrast`` scales the luminance noise;
    ``finest_cell`` is the lattice spacing (pixels) of the finest noise octave; ``blob_density`` and
    ``line_density`` are counts per 100x100 pixels.
    """

    base_hue: float = 30.0
    hue_spread: float = 40.0
    saturation: float = 0.55
    brightness: float = 0.55
    contrast: float = 0.22
    finest_cell: float = 2.5
    blob_density: float = 0.5
    line_density: float = 0.35

    def to_dict(self) -> dict:
        return asdict(self)


def random_scene_style(rng: np.random.Generator, base_hue: float | None = None) -> SceneStyle:
    """Draw a palette; ``base_hue`` (degrees) pins the main hue, e.g. to keep scenes apart."""
    return SceneStyle(
        base_hue=float(rng.uniform(0.0, 360.0) if base_hue is None else base_hue % 360.0),
        hue_spread=float(rng.uniform(15.0, 45.0)),
        saturation=float(rng.uniform(0.35, 0.75)),
        brightness=float(rng.uniform(0.45, 0.65)),
        contrast=float(rng.uniform(0.18, 0.26)),
        finest_cell=float(rng.uniform(2.0, 3.0)),
        blob_density=float(rng.uniform(0.3, 0.7)),
        line_density=float(rng.uniform(0.2, 0.5)),
    )


def value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """One octave of value noise: a random lattice with spacing ``cell`` pixels, bicubic-interpolated.

    The lattice is rotated by a random angle and shifted by a random phase, so octaves never line up
    and the result has no axis-aligned grain. Returns float32 ``(height, width)``, roughly in [0, 1].
    """
    if cell <= 0:
        raise ValueError(f"cell must be positive, got {cell}")
    angle = rng.uniform(0.0, np.pi / 2)
    cos, sin = np.cos(angle), np.sin(angle)
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    lattice_x = (cos * xs - sin * ys) / cell
    lattice_y = (sin * xs + cos * ys) / cell
    # Lattice coordinates of the image corners bound the rotated grid; a margin of 2 covers bicubic taps.
    corners_x = np.array([0, width * cos, -height * sin, width * cos - height * sin]) / cell
    corners_y = np.array([0, width * sin, height * cos, width * sin + height * cos]) / cell
    origin_x = np.floor(corners_x.min()) - 2 - rng.uniform(0, 1)
    origin_y = np.floor(corners_y.min()) - 2 - rng.uniform(0, 1)
    cols = int(np.ceil(corners_x.max() - origin_x)) + 3
    rows = int(np.ceil(corners_y.max() - origin_y)) + 3
    lattice = rng.random((rows, cols), dtype=np.float32)
    map_x = (lattice_x - origin_x).astype(np.float32)
    map_y = (lattice_y - origin_y).astype(np.float32)
    return cv2.remap(lattice, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def fractal_noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    coarsest_cell: float,
    finest_cell: float,
    persistence: float = 0.7,
) -> np.ndarray:
    """Sum of value-noise octaves with cells ``finest_cell * 2**k`` up to ``coarsest_cell``.

    Each octave has ``persistence`` times the amplitude of the next coarser one. Returned float32,
    normalised to zero mean and unit std.
    """
    if finest_cell > coarsest_cell:
        raise ValueError(f"finest_cell ({finest_cell}) must not exceed coarsest_cell ({coarsest_cell})")
    octaves = int(np.floor(np.log2(coarsest_cell / finest_cell) + 1e-9)) + 1
    total = np.zeros((height, width), dtype=np.float32)
    for k in range(octaves - 1, -1, -1):
        amplitude = persistence ** (octaves - 1 - k)
        total += amplitude * (value_noise(rng, height, width, finest_cell * 2.0**k) - 0.5)
    std = float(total.std())
    return (total - total.mean()) / (std if std > 0 else 1.0)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    hsv = np.stack([np.mod(hue, 360.0), np.clip(saturation, 0, 1), np.clip(value, 0, 1)], axis=-1)
    return cv2.cvtColor(hsv.astype(np.float32), cv2.COLOR_HSV2RGB)


def _palette_colour(rng: np.random.Generator, style: SceneStyle) -> np.ndarray:
    hue = style.base_hue + rng.uniform(-1.5, 1.5) * style.hue_spread
    saturation = np.clip(style.saturation + rng.uniform(-0.2, 0.25), 0.1, 1.0)
    value = np.clip(style.brightness + rng.uniform(-0.3, 0.3), 0.1, 0.95)
    return _hsv_to_rgb(np.array([[hue]]), np.array([[saturation]]), np.array([[value]]))[0, 0]


def _draw_blobs(rng, image: np.ndarray, detail: np.ndarray, style: SceneStyle) -> None:
    height, width = image.shape[:2]
    count = rng.poisson(style.blob_density * height * width / 1e4)
    scale = min(height, width)
    for _ in range(count):
        mask = np.zeros((height, width), dtype=np.uint8)
        centre = (int(rng.uniform(0, width) * 16), int(rng.uniform(0, height) * 16))
        axes = (int(rng.uniform(0.03, 0.12) * scale * 16), int(rng.uniform(0.03, 0.12) * scale * 16))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, thickness=-1, lineType=cv2.LINE_AA, shift=4)
        alpha = (mask.astype(np.float32) / 255.0 * rng.uniform(0.55, 0.9))[..., None]
        colour = _palette_colour(rng, style)
        # Blobs keep the luminance detail underneath so that their interiors stay trackable.
        fill = colour[None, None, :] * (1.0 + 0.9 * style.contrast * np.tanh(detail[..., None]))
        image *= 1.0 - alpha
        image += alpha * fill


def _draw_lines(rng, image: np.ndarray, style: SceneStyle) -> None:
    height, width = image.shape[:2]
    count = rng.poisson(style.line_density * height * width / 1e4)
    scale = min(height, width)
    for _ in range(count):
        start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.05, 0.25) * scale
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        colour = tuple(float(c) for c in _palette_colour(rng, style))
        thickness = int(rng.integers(1, 4))
        cv2.line(
            image,
            tuple(int(v * 16) for v in start),
            tuple(int(v * 16) for v in end),
            colour,
            thickness=thickness,
            lineType=cv2.LINE_AA,
            shift=4,
        )


def scene_texture(rng: np.random.Generator, height: int, width: int, style: SceneStyle) -> np.ndarray:
    """Render a ``(height, width, 3)`` uint8 RGB background in ``style``'s palette.

    Luminance is fractal noise from ~1/3 of the short side down to ``style.finest_cell`` pixels;
    hue and saturation follow slow noise fields; then palette-coloured blobs and anti-aliased lines.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"texture size must be positive, got {width}x{height}")
    coarse = max(8.0, min(height, width) / 3.0)
    detail = fractal_noise(rng, height, width, coarse, style.finest_cell, persistence=0.75)
    hue_field = fractal_noise(rng, height, width, coarse * 1.5, coarse / 4.0, persistence=0.5)
    saturation_field = fractal_noise(rng, height, width, coarse, coarse / 4.0, persistence=0.5)
    hue = style.base_hue + style.hue_spread * 0.5 * hue_field
    saturation = style.saturation + 0.12 * saturation_field
    # A sigmoid keeps the value inside (0, 1) without clipping, so no region turns flat black or white.
    low = max(0.18, style.brightness - 2.0 * style.contrast)
    high = min(0.97, style.brightness + 2.0 * style.contrast)
    value = low + (high - low) / (1.0 + np.exp(-1.6 * detail))
    image = _hsv_to_rgb(hue, saturation, value)
    _draw_blobs(rng, image, detail, style)
    _draw_lines(rng, image, style)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
