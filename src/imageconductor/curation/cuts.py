"""Hard-cut detection with PySceneDetect's ContentDetector, run on frames already in memory."""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect import ContentDetector, FrameTimecode
from scenedetect.scene_manager import get_scenes_from_cuts


def detect_scenes(
    frames: np.ndarray, fps: float, threshold: float = 27.0, min_scene_len: int = 15
) -> list[tuple[int, int]]:
    """Split ``frames`` (T, H, W, 3) RGB uint8 into scenes ``[(start, end), ...]`` (end exclusive).

    Uses ``ContentDetector`` exactly as ``scenedetect.detect(..., start_in_scene=True)`` would, but on the
    decoded frames, so each video is decoded only once. A video without cuts is one scene.
    """
    num_frames = len(frames)
    if num_frames == 0:
        return []
    fps = float(fps) if fps and fps > 0 else 25.0
    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
    cuts: list[FrameTimecode] = []
    timecode = FrameTimecode(0, fps)
    for index in range(num_frames):
        timecode = FrameTimecode(index, fps)
        cuts += detector.process_frame(timecode, cv2.cvtColor(frames[index], cv2.COLOR_RGB2BGR))
    cuts += detector.post_process(timecode)
    cut_list = sorted({cut.frame_num for cut in cuts})
    scenes = get_scenes_from_cuts(
        cut_list=[FrameTimecode(c, fps) for c in cut_list],
        start_pos=FrameTimecode(0, fps),
        end_pos=FrameTimecode(num_frames, fps),
    )
    return [(int(start.frame_num), int(end.frame_num)) for start, end in scenes]


def longest_scene(scenes: list[tuple[int, int]]) -> tuple[int, int]:
    """The longest scene (the earliest one on ties)."""
    if not scenes:
        raise ValueError("no scenes given")
    return max(scenes, key=lambda scene: (scene[1] - scene[0], -scene[0]))


def cut_frames(scenes: list[tuple[int, int]]) -> list[int]:
    """Frame indices where a new scene starts (the cuts), excluding frame 0."""
    return [start for start, _ in scenes if start > 0]
