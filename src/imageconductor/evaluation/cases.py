"""Evaluation cases: what each generation gets (first frame, prompt, trajectories).

Three sources:

- :func:`cases_from_image`: one user image and prompt for every trajectory set of a suite;
- :func:`synthetic_cases`: a synthetic first frame staged for each trajectory set of a suite (for
  object suites a sprite sits at the start of every object track), with the synthetic world's caption;
- :func:`synthetic_clip_suite`: held-out synthetic clips, whose exact ground-truth motion becomes the
  input trajectories (sprite centres for object clips, background points for camera clips); the
  rendered clip is kept as the case's ``reference`` video.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from imageconductor.evaluation.motion_metrics import MIN_MOVING_PATH_PX, EvaluationError, resample_tracks
from imageconductor.evaluation.suites import EvaluationSuite, SuiteEntry
from imageconductor.synthetic import (
    BACKGROUND,
    CameraMotion,
    ClipSpec,
    ObjectMotion,
    SpriteSpec,
    random_clip_spec,
    random_scene_style,
    render_clip,
)
from imageconductor.trajectories import TrajectorySet
from imageconductor.trajectories.grid import grid_points

__all__ = ["EvalCase", "cases_from_image", "staged_spec", "synthetic_cases", "synthetic_clip_suite"]

# Sprite shapes whose textured interior LK tracks well at the anchor (no thin arms).
_SOLID_SHAPES = ("circle", "square", "hexagon", "pentagon", "diamond")


@dataclass(frozen=True)
class EvalCase:
    """One generation: suite entry ``name``, its ``trajectories`` (TrajectorySet), the first frame
    ``image`` ((H, W, 3) uint8 or PIL), the ``prompt`` and, when known, a ``reference`` video."""

    name: str
    trajectories: Any
    image: Any
    prompt: str
    reference: np.ndarray | None = None


def cases_from_image(suite: EvaluationSuite, image: Any, prompt: str) -> list[EvalCase]:
    """One case per suite entry, all with the same first frame and prompt."""
    return [EvalCase(entry.name, entry.trajectories, image, prompt) for entry in suite]


def _camera_motion_for(tracks: np.ndarray):
    """A synthetic CameraMotion whose caption matches camera tracks (T, K, 2) at their largest excursion.

    The synthetic world's "camera pans right" slides the content left, so the pan is minus the
    tracks' mean displacement; the zoom is the growth of their spread around the centroid.
    """

    centroid = tracks.mean(axis=1)
    spread = np.linalg.norm(tracks - centroid[:, None], axis=-1).mean(axis=1)
    shift = centroid - centroid[0]
    zoom = spread / max(spread[0], 1e-9)
    excursion = np.linalg.norm(shift, axis=1) + 100.0 * np.abs(np.log(np.maximum(zoom, 1e-9)))
    t = int(np.argmax(excursion))
    if excursion[t] < 1e-6:
        raise EvaluationError("camera trajectories do not move; cannot stage a camera scene")
    pan = -shift[t] if np.linalg.norm(shift[t]) >= 1.0 else np.zeros(2)
    return CameraMotion(
        pan=(float(pan[0]), float(pan[1])), zoom=float(zoom[t]) if abs(zoom[t] - 1) > 0.02 else 1.0
    )


def staged_spec(entry: SuiteEntry, kind: str, seed: int, width: int = 384, height: int = 256):
    """The synthetic ClipSpec whose first frame :func:`synthetic_cases` uses for ``entry``."""

    rng = np.random.default_rng([int(seed), 11])
    style = random_scene_style(rng)
    size = 0.22 * min(width, height)
    tracks = resample_tracks(entry.trajectories, 16, width, height)
    colours = list(rng.permutation(["red", "blue", "yellow", "green", "purple", "orange", "cyan", "white"]))
    if kind == "object":
        sprites = []
        for k in range(tracks.shape[1]):
            start = tracks[0, k]
            offsets = tracks[:, k] - start
            farthest = offsets[int(np.argmax(np.linalg.norm(offsets, axis=1)))]
            motion = ObjectMotion("line", (float(farthest[0]), float(farthest[1])))
            if np.linalg.norm(farthest) < MIN_MOVING_PATH_PX:
                motion = ObjectMotion()
            shape = str(rng.choice(_SOLID_SHAPES))
            sprites.append(
                SpriteSpec(shape, str(colours[k % len(colours)]), size, (start[0], start[1]), motion)
            )
        return ClipSpec(seed, "object", 2, width, height, sprites=tuple(sprites), style=style)
    sprite = SpriteSpec(
        str(rng.choice(_SOLID_SHAPES)),
        str(colours[0]),
        size,
        (float(rng.uniform(size, width - size)), float(rng.uniform(size, height - size))),
    )
    return ClipSpec(
        seed, "camera", 2, width, height, camera=_camera_motion_for(tracks), sprites=(sprite,), style=style
    )


def synthetic_cases(
    suite: EvaluationSuite, seed: int = 10_000, width: int = 384, height: int = 256
) -> list[EvalCase]:
    """A staged synthetic first frame and caption for every entry of ``suite`` (seeds ``seed + i``).

    Object suites get one sprite at the start of every object track (a still one for anchors); camera
    suites a textured scene with one sprite, captioned with the matching camera motion.
    """

    cases = []
    for index, entry in enumerate(suite):
        spec = staged_spec(entry, suite.kind, seed + index, width, height)
        clip = render_clip(spec)
        trajectories = entry.trajectories.rescaled(width, height)
        cases.append(EvalCase(entry.name, trajectories, clip.frames[0], spec.caption))
    return cases


def _camera_clip_tracks(clip, grid: int = 3) -> list[np.ndarray]:
    """Exact tracks of background points on a grid that stay visible for the whole clip (at most 8)."""

    width, height = clip.spec.width, clip.spec.height
    candidates = grid_points(width, height, grid)
    candidates = np.concatenate([candidates, candidates * 0.6 + 0.4 * np.array([width / 2, height / 2])])
    positions, visible = clip.track_points(candidates)
    keep = visible.all(axis=0) & (clip.layer_at(candidates) == BACKGROUND)
    return [positions[:, i] for i in np.flatnonzero(keep)[:8]]


def synthetic_clip_suite(
    kind: str,
    seeds: Iterable[int],
    num_frames: int = 16,
    width: int = 384,
    height: int = 256,
    texture_scale: float = 1.0,
    motion_scale: float = 1.0,
    sprite_scale: float = 1.0,
) -> tuple[EvaluationSuite, list[EvalCase]]:
    """Held-out synthetic clips of ``kind`` ("object" or "camera") as a suite plus cases (``texture_scale``,
    ``motion_scale`` and ``sprite_scale`` as in `imageconductor.synthetic.random_clip_spec`: use the values
    the model was trained with).

    Object clips: the exact centre tracks of the moving sprites; camera clips: exact tracks of
    background points. Each case keeps the clip's first frame, caption and frames (``reference``).
    """

    if kind not in ("object", "camera"):
        raise EvaluationError(f"kind must be 'object' or 'camera', got {kind!r}")
    entries, cases = [], []
    for seed in seeds:
        clip = render_clip(
            random_clip_spec(
                int(seed),
                kind=kind,
                num_frames=num_frames,
                width=width,
                height=height,
                texture_scale=texture_scale,
                motion_scale=motion_scale,
                sprite_scale=sprite_scale,
            )
        )
        if kind == "object":
            centres = clip.sprite_centres()
            moving = [i for i, s in enumerate(clip.spec.sprites) if not s.motion.is_static]
            tracks = [centres[:, i] for i in moving][:8]
        else:
            tracks = _camera_clip_tracks(clip)
        tracks = [np.clip(t, 0, [width, height]) for t in tracks]
        if not tracks:
            raise EvaluationError(f"synthetic {kind} clip with seed {seed} has no trackable trajectory")
        name = f"seed_{int(seed)}"
        trajectories = TrajectorySet(tracks, kind, 1.0, (width, height))
        entries.append(SuiteEntry(name, clip.caption, trajectories))
        cases.append(EvalCase(name, trajectories, clip.frames[0], clip.caption, reference=clip.frames))
    if not entries:
        raise EvaluationError("no seeds given")
    return EvaluationSuite(f"synthetic-{kind}", kind, tuple(entries)), cases
