"""The two per-input stage functions both engines run.

Pass 1, :func:`analyse_input`: decode -> cuts -> longest scene -> seeded window -> motion score ->
centre crop -> caption (when no sidecar caption and a model is named) -> encoded clip. Pass 2,
:func:`annotate_clip`: decode the encoded clip -> grid tracking -> track trust -> clip kind.
Both are pure functions of (input, config): no state, no dependence on processing order.
"""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from imageconductor.curation.captioning import cached_captioner, clip_caption
from imageconductor.curation.clip import center_crop, choose_window
from imageconductor.curation.clip_kind import ClipKindResult, classify_clip_kind
from imageconductor.curation.config import CurationConfig
from imageconductor.curation.cuts import cut_frames, detect_scenes, longest_scene
from imageconductor.curation.decode import decode_video
from imageconductor.curation.errors import SkipInput
from imageconductor.curation.inputs import InputItem
from imageconductor.curation.motion import make_flow_backend, motion_score
from imageconductor.curation.seeding import input_rng
from imageconductor.curation.track_trust import trusted_visibility
from imageconductor.curation.tracking import make_tracker
from imageconductor.trajectories.grid import grid_points
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes

CANDIDATE = "candidate"
DROPPED = "dropped"
ERROR_REASON = "error"


@dataclass
class Pass1Result:
    """What pass 1 learned about one input. ``record`` is JSON-able; ``clip`` holds the MP4 bytes."""

    record: dict[str, Any]
    clip: bytes = b""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Pass2Result:
    """Tracks (T, N, 2) float16 and visibility (T, N) bool of one kept clip (or an error).

    ``info`` is JSON-able: ``kind`` (``camera`` / ``object``), ``kind_moving_points``,
    ``kind_tracked_points`` and ``visible_before_trust`` (the tracker's visible share before the trust checks).
    """

    key: str
    tracks: np.ndarray | None
    visibility: np.ndarray | None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class _Timer:
    """Per-stage seconds: ``timings[name]`` wall clock and ``timings[name + ".cpu"]`` process CPU time."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - wall
            cpu_name = f"{name}.cpu"
            self.timings[cpu_name] = self.timings.get(cpu_name, 0.0) + time.process_time() - cpu


@lru_cache(maxsize=4)
def _flow_backend(name: str, raft_weights: str | None, dis_preset: str):
    """One flow backend per process and setting (a RAFT file is loaded once, not per input)."""
    return make_flow_backend(name, raft_weights, dis_preset)


@lru_cache(maxsize=4)
def _tracker(
    name: str, window: int, levels: int, fb_threshold: float, max_error: float, checkpoint: str | None
):
    """One tracker per process and setting (a CoTracker checkpoint is loaded once)."""
    return make_tracker(
        name,
        window=window,
        levels=levels,
        fb_threshold=fb_threshold,
        max_patch_error=max_error,
        cotracker_checkpoint=checkpoint,
    )


def tracker_for(config: CurationConfig):
    """The point tracker ``config`` names (one per process and setting)."""
    return _tracker(
        config.tracker,
        config.lk_window,
        config.lk_levels,
        config.fb_threshold,
        config.lk_max_error,
        config.cotracker_checkpoint,
    )


def trust_visibility(
    frames: np.ndarray, tracks: np.ndarray, visibility: np.ndarray, config: CurationConfig
) -> np.ndarray:
    """The tracker's visibility after the trust checks ``config.track_trust`` names (see ``track_trust.py``)."""
    needs_flow = config.track_trust in ("flow", "fb+flow")
    backend = (
        _flow_backend(config.motion_backend, config.raft_weights, config.dis_preset) if needs_flow else None
    )
    return trusted_visibility(
        frames,
        tracks,
        visibility,
        checks=config.track_trust,
        fb_px=config.trust_fb_px,
        flow_px=config.trust_flow_px,
        flow_rel=config.trust_flow_rel,
        flow_backend=backend,
        window=config.lk_window,
        levels=config.lk_levels,
    )


def clip_kind_for(tracks: np.ndarray, visibility: np.ndarray, config: CurationConfig) -> ClipKindResult:
    """The clip's ``camera`` / ``object`` label with the thresholds of ``config``."""
    return classify_clip_kind(
        tracks,
        visibility,
        residual_px=config.kind_residual_px,
        min_outlier_frames=config.kind_min_outlier_frames,
        min_moving_points=config.kind_min_moving_points,
        min_moving_share=config.kind_min_moving_share,
    )


def analyse_input(item: InputItem, config: CurationConfig) -> Pass1Result:
    """Pass 1 for one input. Never raises for a bad input: the record says ``dropped`` and why."""
    cv2.setNumThreads(1)  # one core per task: deterministic, and parallelism comes from the engine
    timer = _Timer()
    record: dict[str, Any] = {
        "input_id": item.input_id,
        "key": item.key,
        "source": item.path,
        "caption": item.caption or "",
        "status": CANDIDATE,
    }
    try:
        with timer("decode"):
            video = decode_video(
                item.path, config.short_side, config.width, config.height, max_frames=config.max_source_frames
            )
        record.update(
            source_frames=len(video.frames),
            source_fps=round(float(video.fps), 6),
            source_size=list(video.source_size),
            resized_size=list(video.resized_size),
        )
        with timer("cuts"):
            scenes = detect_scenes(video.frames, video.fps, config.scene_threshold, config.min_scene_len)
            scene = longest_scene(scenes)
        record.update(cuts=cut_frames(scenes), scene=list(scene))
        with timer("window"):
            window = choose_window(
                scene,
                config.num_frames,
                config.stride_min,
                config.stride_max,
                input_rng(config.seed, item.input_id),
            )
            frames = video.frames[window.indices]
            del video
        record.update(window_start=window.start, stride=window.stride, frame_indices=window.indices.tolist())
        with timer("motion"):
            backend = _flow_backend(config.motion_backend, config.raft_weights, config.dis_preset)
            score = motion_score(frames, backend, config.flow_short_side)
        record["motion_score"] = round(score, 6)
        with timer("crop_encode"):
            cropped, box = center_crop(frames, config.width, config.height)
            clip = encode_mp4_bytes(cropped, config.output_fps, config.crf, config.x264_preset)
        record["crop"] = list(box)
        record["caption_source"] = "sidecar" if record["caption"] else "none"
        if not record["caption"] and config.caption_model:
            with timer("caption"):
                captioner = cached_captioner(
                    config.caption_model, config.caption_device, config.caption_max_tokens
                )
                record["caption"] = clip_caption(cropped, captioner)
            record["caption_source"] = "model"
        return Pass1Result(record, clip, timer.timings)
    except SkipInput as skip:
        record.update(status=DROPPED, reason=skip.reason, detail=skip.detail)
    except Exception as exc:  # noqa: BLE001 - one bad input must never stop the run
        record.update(status=DROPPED, reason=ERROR_REASON, detail=_describe(exc))
    return Pass1Result(record, b"", timer.timings)


def annotate_clip(key: str, clip: bytes, config: CurationConfig) -> Pass2Result:
    """Pass 2 for one kept clip: grid tracking on the decoded MP4 (the frames training sees), trust, kind."""
    cv2.setNumThreads(1)
    timer = _Timer()
    try:
        with timer("decode_clip"):
            frames = decode_mp4_bytes(clip)
        with timer("tracking"):
            points = grid_points(frames.shape[2], frames.shape[1], config.grid_size).astype(np.float32)
            tracks, visibility = tracker_for(config)(frames, points)
        info: dict[str, Any] = {"visible_before_trust": round(float(np.mean(visibility)), 6)}
        with timer("track_trust"):
            visibility = trust_visibility(frames, tracks, visibility, config)
        with timer("clip_kind"):
            kind = clip_kind_for(tracks, visibility, config)
        info.update(
            kind=kind.kind, kind_moving_points=kind.moving_points, kind_tracked_points=kind.tracked_points
        )
        return Pass2Result(key, tracks.astype(np.float16), visibility.astype(bool), None, timer.timings, info)
    except Exception as exc:  # noqa: BLE001 - reported as a dropped sample with the error
        return Pass2Result(key, None, None, _describe(exc), timer.timings)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
