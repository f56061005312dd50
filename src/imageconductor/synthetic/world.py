"""Render a ClipSpec into frames, and answer exact ground-truth questions about the result.

Rendering: a background canvas larger than the view (so every frame samples real texture) is warped
into each frame by the camera's scene-to-image transform with bilinear sampling; sprites are warped the
same way, composed with their own translation, and alpha-blended back to front.

Ground truth is analytic: a point's layer (background or a sprite) is the topmost layer whose alpha is
>= 0.5 there; it then moves with that layer's transform. A point is visible in a frame when it lies
inside the frame (0 <= x <= W - 1, 0 <= y <= H - 1) and no sprite in front of its layer covers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from imageconductor.synthetic.motion import camera_matrices
from imageconductor.synthetic.spec import ClipSpec
from imageconductor.synthetic.sprites import render_sprite
from imageconductor.synthetic.textures import scene_texture

__all__ = ["BACKGROUND", "SyntheticClip", "render_clip"]

BACKGROUND = -1  # layer index of the background in layer maps
_CANVAS_MARGIN = 8
_COVERED = 0.5  # alpha from which a sprite counts as covering a point


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of one (2, 3) affine matrix or a stack (..., 2, 3)."""
    linear = np.linalg.inv(matrix[..., :2])
    offset = -np.einsum("...ij,...j->...i", linear, matrix[..., 2])
    return np.concatenate([linear, offset[..., None]], axis=-1)


def _apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply (2, 3) ``matrix`` to points (..., 2)."""
    x, y = points[..., 0], points[..., 1]
    out = np.empty(np.broadcast(x, y).shape + (2,))
    out[..., 0] = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    out[..., 1] = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return out


def _compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine map ``outer(inner(x))``."""
    return np.concatenate(
        [outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], 1
    )


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample a 2-D ``image`` bilinearly at (xs, ys), treating everything outside it as 0 (as cv2 does
    with BORDER_CONSTANT)."""
    padded = np.pad(image, 1)
    px, py = np.asarray(xs, dtype=np.float64) + 1.0, np.asarray(ys, dtype=np.float64) + 1.0
    inside = (px >= 0) & (py >= 0) & (px <= padded.shape[1] - 1) & (py <= padded.shape[0] - 1)
    px = np.clip(px, 0, padded.shape[1] - 1)
    py = np.clip(py, 0, padded.shape[0] - 1)
    x0 = np.minimum(np.floor(px).astype(np.int64), padded.shape[1] - 2)
    y0 = np.minimum(np.floor(py).astype(np.int64), padded.shape[0] - 2)
    fx, fy = px - x0, py - y0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x0 + 1] * fx
    bottom = padded[y0 + 1, x0] * (1 - fx) + padded[y0 + 1, x0 + 1] * fx
    return np.where(inside, top * (1 - fy) + bottom * fy, 0.0)


def _sprite_matrix(camera: np.ndarray, anchor: np.ndarray, side: int) -> np.ndarray:
    """Sprite-image-to-frame affine map: the sprite image's centre pixel lands on ``anchor`` (scene)."""
    matrix = camera.copy()
    matrix[:, 2] += camera[:, :2] @ (anchor - (side - 1) / 2.0)
    return matrix


def _image_box(matrix: np.ndarray, side: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Frame pixel box (x0, y0, x1, y1), ends exclusive, that a ``side``-pixel sprite image can touch."""
    corners = _apply_affine(matrix, np.array([[-1.0, -1.0], [side, -1.0], [-1.0, side], [side, side]]))
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, [width, height])
    if x0 >= x1 or y0 >= y1:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _canvas_bounds(matrices: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """Scene-to-canvas offset and canvas size covering every frame's view (plus a margin)."""
    corners = np.array([[-1.0, -1.0], [width, -1.0], [-1.0, height], [width, height]])
    footprints = np.concatenate([_apply_affine(m, corners) for m in _invert_affine(matrices)])
    low = np.floor(footprints.min(axis=0)) - _CANVAS_MARGIN
    high = np.ceil(footprints.max(axis=0)) + _CANVAS_MARGIN
    size = (high - low).astype(int) + 1
    return -low, int(size[0]), int(size[1])


@dataclass(eq=False)
class SyntheticClip:
    """A rendered clip with exact ground truth.

    ``frames`` (T, H, W, 3) uint8 RGB; ``camera`` (T, 2, 3) scene-to-image matrices; ``anchors``
    (K, T, 2) sprite anchor positions in scene coordinates; ``sprite_images`` the K straight-alpha RGBA
    sprite images (anchor at their centre).
    """

    spec: ClipSpec
    frames: np.ndarray
    camera: np.ndarray
    anchors: np.ndarray
    sprite_images: list[np.ndarray]

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def caption(self) -> str:
        return self.spec.caption

    @property
    def num_frames(self) -> int:
        return self.spec.num_frames

    def _sprite_alpha(self, sprite: int, frame: int, scene_points: np.ndarray) -> np.ndarray:
        """Alpha of ``sprite`` at ``frame`` under scene points (..., 2); only points near it are sampled."""
        image = self.sprite_images[sprite]
        centre = (image.shape[0] - 1) / 2.0
        local = scene_points - self.anchors[sprite, frame] + centre
        near = np.all((local > -1.0) & (local < image.shape[0]), axis=-1)
        alpha = np.zeros(scene_points.shape[:-1])
        alpha[near] = _bilinear(image[..., 3], local[near][:, 0], local[near][:, 1])
        return alpha

    def _layers(self, frame: int, scene_points: np.ndarray) -> np.ndarray:
        """Topmost covering layer (sprite index, or BACKGROUND) of scene points at ``frame``."""
        layers = np.full(scene_points.shape[:-1], BACKGROUND, dtype=np.int64)
        for sprite in range(len(self.sprite_images) - 1, -1, -1):
            covered = (layers == BACKGROUND) & (self._sprite_alpha(sprite, frame, scene_points) >= _COVERED)
            layers[covered] = sprite
        return layers

    def _anchor_of(self, layers: np.ndarray, frame: int) -> np.ndarray:
        """Scene offset (..., 2) of each point's layer at ``frame``: its sprite's anchor, 0 on background."""
        offsets = np.zeros(layers.shape + (2,))
        on_sprite = layers != BACKGROUND
        offsets[on_sprite] = self.anchors[layers[on_sprite], frame]
        return offsets

    def _check_frame(self, frame: int) -> None:
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"frame {frame} out of range for a clip of {self.num_frames} frames")

    def layer_at(self, points, frame: int = 0) -> np.ndarray:
        """Layer (sprite index back to front, or BACKGROUND = -1) seen at image ``points`` (N, 2)."""
        self._check_frame(frame)
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return self._layers(frame, _apply_affine(_invert_affine(self.camera[frame]), points))

    def layer_map(self, frame: int) -> np.ndarray:
        """(H, W) map of the layer (sprite index or BACKGROUND) seen at every pixel of ``frame``."""
        self._check_frame(frame)
        height, width = self.spec.height, self.spec.width
        layers = np.full((height, width), BACKGROUND, dtype=np.int64)
        to_scene = _invert_affine(self.camera[frame])
        for sprite, image in enumerate(self.sprite_images):
            # Only the pixels the sprite image can reach need a look; later sprites paint over earlier.
            side = image.shape[0]
            box = _image_box(
                _sprite_matrix(self.camera[frame], self.anchors[sprite, frame], side), side, width, height
            )
            if box is None:
                continue
            x0, y0, x1, y1 = box
            scene = _apply_affine(to_scene, self._pixel_grid[y0:y1, x0:x1])
            covered = self._sprite_alpha(sprite, frame, scene) >= _COVERED
            layers[y0:y1, x0:x1][covered] = sprite
        return layers

    @cached_property
    def _pixel_grid(self) -> np.ndarray:
        """(H, W, 2) pixel coordinates (x, y), read-only."""
        ys, xs = np.mgrid[0 : self.spec.height, 0 : self.spec.width]
        grid = np.stack([xs, ys], axis=-1).astype(np.float64)
        grid.flags.writeable = False
        return grid

    def track_points(self, points, frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Exact tracks of image ``points`` (N, 2) (x, y) given on ``frame``.

        Returns ``positions`` (T, N, 2) float64 in every frame's pixel coordinates (defined even where
        hidden) and ``visible`` (T, N) bool: inside the frame and not covered by a sprite in front.
        """
        self._check_frame(frame)
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points must be shaped (N, 2), got {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError("points must be finite (no NaN or inf)")
        scene = _apply_affine(_invert_affine(self.camera[frame]), points)
        layers = self._layers(frame, scene)
        local = scene - self._anchor_of(layers, frame)
        num_frames, count = self.num_frames, len(points)
        positions = np.empty((num_frames, count, 2))
        visible = np.empty((num_frames, count), dtype=bool)
        for t in range(num_frames):
            scene_t = local + self._anchor_of(layers, t)
            positions[t] = _apply_affine(self.camera[t], scene_t)
            x, y = positions[t, :, 0], positions[t, :, 1]
            inside = (x >= 0) & (y >= 0) & (x <= self.spec.width - 1) & (y <= self.spec.height - 1)
            hidden = np.zeros(count, dtype=bool)
            for sprite in range(len(self.sprite_images)):
                in_front = layers < sprite
                if in_front.any():
                    hidden |= in_front & (self._sprite_alpha(sprite, t, scene_t) >= _COVERED)
            visible[t] = inside & ~hidden
        return positions, visible

    def sprite_centres(self) -> np.ndarray:
        """Image positions (T, K, 2) of every sprite's anchor in every frame."""
        return np.stack(
            [_apply_affine(self.camera[t], self.anchors[:, t]) for t in range(self.num_frames)]
        ).reshape(self.num_frames, len(self.sprite_images), 2)

    def _camera_step(self, frame: int) -> np.ndarray:
        """Image-to-image affine map of the background from ``frame`` to ``frame + 1``."""
        return _compose_affine(self.camera[frame + 1], _invert_affine(self.camera[frame]))

    def true_flow(self, frame: int) -> np.ndarray:
        """Exact forward flow (H, W, 2) from ``frame`` to ``frame + 1`` of the surface seen at each pixel."""
        self._check_frame(frame)
        self._check_frame(frame + 1)
        pixels = self._pixel_grid
        flow = _apply_affine(self._camera_step(frame), pixels) - pixels
        layers = self.layer_map(frame)
        for sprite in range(len(self.sprite_images)):
            # A sprite point moves like the background plus its sprite's step, seen through the camera.
            step = self.anchors[sprite, frame + 1] - self.anchors[sprite, frame]
            flow[layers == sprite] += self.camera[frame + 1][:, :2] @ step
        return flow

    def _flow_speeds(self, frame: int) -> np.ndarray:
        flow = self.true_flow(frame)
        return np.hypot(flow[..., 0], flow[..., 1])

    def mean_motion(self) -> np.ndarray:
        """True mean per-pixel motion magnitude (T - 1,) of each adjacent frame pair, over all pixels."""
        return np.array([self._flow_speeds(t).mean() for t in range(self.num_frames - 1)])

    def rms_motion(self) -> np.ndarray:
        """True root-mean-square per-pixel motion magnitude (T - 1,) of each adjacent frame pair (the
        exact counterpart of an RMS optical-flow motion score)."""
        return np.array([np.sqrt((self._flow_speeds(t) ** 2).mean()) for t in range(self.num_frames - 1)])

    def camera_motion_per_frame(self) -> np.ndarray:
        """Mean per-pixel magnitude (T - 1,) of the camera-induced motion alone (sprites ignored)."""
        pixels = self._pixel_grid
        result = []
        for t in range(self.num_frames - 1):
            flow = _apply_affine(self._camera_step(t), pixels) - pixels
            result.append(np.hypot(flow[..., 0], flow[..., 1]).mean())
        return np.array(result)


def _composite_sprite(
    frame: np.ndarray, alpha: np.ndarray, premultiplied: np.ndarray, matrix: np.ndarray
) -> None:
    """Blend a sprite (its alpha and premultiplied colour) into ``frame`` in place, mapped by ``matrix``."""
    height, width = frame.shape[:2]
    box = _image_box(matrix, alpha.shape[0], width, height)
    if box is None:
        return
    x0, y0, x1, y1 = box
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    inverse = _invert_affine(local)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    size = (x1 - x0, y1 - y0)
    colour = cv2.warpAffine(premultiplied, inverse, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    coverage = cv2.warpAffine(alpha, inverse, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    region = frame[y0:y1, x0:x1]
    region *= 1.0 - coverage[..., None]
    region += colour.reshape(region.shape)


def render_clip(spec: ClipSpec) -> SyntheticClip:
    """Render ``spec`` deterministically (same spec -> identical frames) into a SyntheticClip."""
    num_frames, width, height = spec.num_frames, spec.width, spec.height
    camera = camera_matrices(spec.camera, num_frames, width, height)
    offset, canvas_width, canvas_height = _canvas_bounds(camera, width, height)
    texture_rng = np.random.default_rng([spec.seed, 0])
    canvas = scene_texture(texture_rng, canvas_height, canvas_width, spec.style).astype(np.float32)

    sprite_images, premultiplied = [], []
    for index, sprite in enumerate(spec.sprites):
        image = render_sprite(
            np.random.default_rng([spec.seed, 1, index]), sprite.shape, sprite.colour, sprite.size
        )
        sprite_images.append(image)
        premultiplied.append(np.ascontiguousarray(image[..., :3] * image[..., 3:]))
    anchors = np.array(
        [np.asarray(s.start)[None, :] + s.motion.offsets(num_frames) for s in spec.sprites]
    ).reshape(len(spec.sprites), num_frames, 2)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        # Canvas pixel c shows scene point c - offset; frame pixel y = camera_t(scene point).
        canvas_to_image = camera[t].copy()
        canvas_to_image[:, 2] -= camera[t][:, :2] @ offset
        frame = cv2.warpAffine(
            canvas,
            _invert_affine(canvas_to_image),
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        for index, image in enumerate(sprite_images):
            matrix = _sprite_matrix(camera[t], anchors[index, t], image.shape[0])
            _composite_sprite(frame, np.ascontiguousarray(image[..., 3]), premultiplied[index], matrix)
        frames[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return SyntheticClip(
        spec=spec, frames=frames, camera=camera, anchors=anchors, sprite_images=sprite_images
    )
