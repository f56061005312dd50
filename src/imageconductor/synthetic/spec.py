"""Clip specifications: everything needed to render a synthetic clip, as plain JSON-able dataclasses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from imageconductor.synthetic.captions import caption_for
from imageconductor.synthetic.motion import CameraMotion, ObjectMotion
from imageconductor.synthetic.sprites import COLOURS, SHAPES
from imageconductor.synthetic.textures import SceneStyle

__all__ = ["CLIP_KINDS", "ClipSpec", "SpriteSpec"]

CLIP_KINDS: tuple[str, ...] = ("camera", "object", "mixed")


@dataclass(frozen=True)
class SpriteSpec:
    """One sprite: ``shape`` and named ``colour``, bounding diameter ``size`` (pixels at zoom 1), anchor
    ``start`` in scene coordinates (= frame-0 pixels) and its ``motion`` relative to the scene."""

    shape: str
    colour: str
    size: float
    start: tuple[float, float]
    motion: ObjectMotion = field(default_factory=ObjectMotion)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown sprite shape {self.shape!r}; choose from {', '.join(SHAPES)}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown sprite colour {self.colour!r}; choose from {', '.join(COLOURS)}")
        if self.size < 6:
            raise ValueError(f"sprite size must be at least 6 pixels, got {self.size}")
        object.__setattr__(self, "start", (float(self.start[0]), float(self.start[1])))

    def to_dict(self) -> dict:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": float(self.size),
            "start": list(self.start),
            "motion": self.motion.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SpriteSpec:
        motion = dict(data.get("motion", {}))
        for key in ("displacement", "pause"):
            if key in motion:
                motion[key] = tuple(motion[key])
        return cls(
            shape=data["shape"],
            colour=data["colour"],
            size=float(data["size"]),
            start=tuple(data["start"]),
            motion=ObjectMotion(**motion),
        )


@dataclass(frozen=True)
class ClipSpec:
    """A synthetic clip: ``seed`` (textures), ``kind`` label, size, length, camera, sprites (back to front)
    and background ``style``.

    The kind must match the motion: "camera" = moving camera and still sprites, "object" = static camera
    and at least one moving sprite, "mixed" = both.
    """

    seed: int
    kind: str = "mixed"
    num_frames: int = 32
    width: int = 384
    height: int = 256
    camera: CameraMotion = field(default_factory=CameraMotion)
    sprites: tuple[SpriteSpec, ...] = ()
    style: SceneStyle = field(default_factory=SceneStyle)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sprites", tuple(self.sprites))
        if self.kind not in CLIP_KINDS:
            raise ValueError(f"unknown clip kind {self.kind!r}; choose from {', '.join(CLIP_KINDS)}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"clip size must be at least 8x8, got {self.width}x{self.height}")
        if len(self.sprites) > 8:
            raise ValueError(f"a clip holds at most 8 sprites, got {len(self.sprites)}")
        objects_move = any(not sprite.motion.is_static for sprite in self.sprites)
        camera_moves = not self.camera.is_static
        expected = {"camera": (True, False), "object": (False, True), "mixed": (True, True)}[self.kind]
        if (camera_moves, objects_move) != expected:
            raise ValueError(
                f"clip kind {self.kind!r} needs camera moving={expected[0]} and sprites moving={expected[1]}, "
                f"got camera moving={camera_moves}, sprites moving={objects_move}"
            )

    @property
    def caption(self) -> str:
        return caption_for(self.camera, [(s.colour, s.shape, s.motion) for s in self.sprites])

    def to_dict(self) -> dict:
        return {
            "seed": int(self.seed),
            "kind": self.kind,
            "num_frames": int(self.num_frames),
            "width": int(self.width),
            "height": int(self.height),
            "camera": self.camera.to_dict(),
            "sprites": [sprite.to_dict() for sprite in self.sprites],
            "style": self.style.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> ClipSpec:
        camera = dict(data.get("camera", {}))
        if "pan" in camera:
            camera["pan"] = tuple(camera["pan"])
        sprites: Sequence[dict] = data.get("sprites", [])
        return cls(
            seed=int(data["seed"]),
            kind=data.get("kind", "mixed"),
            num_frames=int(data.get("num_frames", 32)),
            width=int(data.get("width", 384)),
            height=int(data.get("height", 256)),
            camera=CameraMotion(**camera),
            sprites=tuple(SpriteSpec.from_dict(s) for s in sprites),
            style=SceneStyle(**data.get("style", {})),
        )
