"""The shipped example inputs (first frame, trajectory file, prompt), cut from held-out synthetic clips.

The object example is the first frame of a synthetic object clip with the exact path of its moving
sprite(s) as the trajectory file and the clip's caption as the prompt; the camera example is the first
frame of a synthetic camera clip with exact background-point tracks. The seeds lie outside the range
training draws from (``SeedSequence([0, index])``). The frames are rendered at 384x256 with the model's
background smoothness scaled to that width (its ``texture_scale`` x 384 / its width), with its
``motion_scale`` and ``sprite_scale`` (speeds and sizes already scale with the frame) and its clip
length, so that resized to the model's frame they look and move like its training clips.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import PIL.Image

from imageconductor.evaluation.cases import synthetic_clip_suite
from imageconductor.pipelines.settings import VideoSize, synthetic_world
from imageconductor.trajectories import save_trajectories

__all__ = ["EXAMPLE_SEEDS", "write_example_inputs"]

#: The held-out seed of each example.
EXAMPLE_SEEDS = {"object": 20_005, "camera": 20_002}
WIDTH, HEIGHT = 384, 256


def write_example_inputs(out: str | os.PathLike, model_index: Mapping[str, Any]) -> list[str]:
    """Write ``{kind}_first_frame.png``, ``{kind}_trajectory.json`` and ``{kind}_prompt.txt`` for the
    object and camera examples of the model whose ``model_index.json`` is given; returns one line per
    example describing it."""
    out = Path(out)
    size = VideoSize.native(model_index)
    world = synthetic_world(model_index)
    texture_scale = world["texture_scale"] * WIDTH / size.width
    motion_scale = world["motion_scale"]
    sprite_scale = world["sprite_scale"]
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for kind, seed in EXAMPLE_SEEDS.items():
        _, cases = synthetic_clip_suite(
            kind, [seed], size.num_frames, WIDTH, HEIGHT, texture_scale, motion_scale, sprite_scale
        )
        case = cases[0]
        PIL.Image.fromarray(case.image).save(out / f"{kind}_first_frame.png")
        save_trajectories(case.trajectories, out / f"{kind}_trajectory.json")
        (out / f"{kind}_prompt.txt").write_text(case.prompt + "\n")
        lines.append(
            f"{kind}: seed {seed}, {size.num_frames} frames, texture scale {texture_scale:g}, "
            f"motion scale {motion_scale:g}, sprite scale {sprite_scale:g}, {len(case.trajectories)} track(s), "
            f"prompt {case.prompt!r}"
        )
    return lines
