"""A synthetic video world with exact ground truth: textured scenes, sprites, known camera and object
motion, exact point tracks and visibility, and long raw videos with recorded hard cuts.

Quick use::

    from imageconductor.synthetic import random_clip_spec, render_clip

    clip = render_clip(random_clip_spec(seed=0, kind="mixed"))
    clip.frames            # (T, H, W, 3) uint8
    clip.caption           # "a red star moves right, camera pans up"
    positions, visible = clip.track_points([[100.0, 80.0]], frame=0)
"""

from imageconductor.synthetic.captions import caption_for, direction_word
from imageconductor.synthetic.motion import CameraMotion, ObjectMotion, camera_matrices, ease
from imageconductor.synthetic.random_spec import random_camera_motion, random_clip_spec, random_object_motion
from imageconductor.synthetic.raw_video import (
    RawVideoInfo,
    raw_video_specs,
    render_raw_video,
    write_raw_video,
)
from imageconductor.synthetic.spec import CLIP_KINDS, ClipSpec, SpriteSpec
from imageconductor.synthetic.sprites import COLOURS, SHAPES
from imageconductor.synthetic.textures import SceneStyle, random_scene_style, scene_texture
from imageconductor.synthetic.world import BACKGROUND, SyntheticClip, render_clip

__all__ = [
    "BACKGROUND",
    "CLIP_KINDS",
    "COLOURS",
    "SHAPES",
    "CameraMotion",
    "ClipSpec",
    "ObjectMotion",
    "RawVideoInfo",
    "SceneStyle",
    "SpriteSpec",
    "SyntheticClip",
    "camera_matrices",
    "caption_for",
    "direction_word",
    "ease",
    "random_camera_motion",
    "random_clip_spec",
    "random_object_motion",
    "random_scene_style",
    "raw_video_specs",
    "render_clip",
    "render_raw_video",
    "scene_texture",
    "write_raw_video",
]
