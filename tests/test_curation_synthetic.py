"""Curation stages measured against the synthetic world's exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from imageconductor.curation.cuts import cut_frames, detect_scenes, longest_scene
from imageconductor.curation.decode import decode_video
from imageconductor.curation.motion import DISFlow, motion_score
from imageconductor.curation.tracking import LucasKanadeTracker
from imageconductor.synthetic import random_clip_spec, render_clip, write_raw_video
from imageconductor.trajectories import grid_points
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes

CUT_TOLERANCE = 1  # frames


def match_cuts(found: list[int], true: list[int], tolerance: int = CUT_TOLERANCE) -> tuple[int, int]:
    """(true cuts found, detected cuts matching no true cut)."""
    hits = sum(any(abs(f - t) <= tolerance for f in found) for t in true)
    false = sum(not any(abs(f - t) <= tolerance for t in true) for f in found)
    return hits, false


def test_cut_matcher_counts_misses_and_false_cuts():
    assert match_cuts([10, 31, 50], [10, 30, 70]) == (2, 1)


def test_cut_detection_finds_injected_cuts(tmp_path):
    found_total = true_total = hits_total = false_total = 0
    for seed in range(3):
        path = tmp_path / f"raw{seed}.mp4"
        info = write_raw_video(path, seed=100 + seed, num_scenes=4, frames_per_scene=(18, 30))
        video = decode_video(path, 256, 384, 256)
        assert len(video.frames) == info.num_frames
        scenes = detect_scenes(video.frames, video.fps)
        found = cut_frames(scenes)
        hits, false = match_cuts(found, info.cut_frames)
        hits_total, false_total = hits_total + hits, false_total + false
        found_total, true_total = found_total + len(found), true_total + len(info.cut_frames)
        # the longest detected scene is a true scene
        assert longest_scene(scenes) in [tuple(s) for s in info.scenes]
    recall = hits_total / true_total
    false_rate = false_total / max(found_total, 1)
    print(f"cut detection: {hits_total}/{true_total} cuts found, {false_total} false of {found_total}")
    assert recall >= 0.95
    assert false_rate <= 0.05


@pytest.fixture(scope="module")
def tracked_clips():
    """(clip, tracks, visibility) for clips of each kind, tracked through the MP4 the shards store."""
    results = []
    for seed, kind in [(1, "camera"), (2, "object"), (3, "mixed"), (4, "mixed")]:
        clip = render_clip(random_clip_spec(seed, kind=kind, num_frames=32))
        frames = decode_mp4_bytes(encode_mp4_bytes(clip.frames, fps=8, crf=15))
        tracks, visible = LucasKanadeTracker()(frames, grid_points(clip.spec.width, clip.spec.height, 16))
        results.append((clip, tracks, visible))
    return results


def test_tracker_end_point_error_against_ground_truth(tracked_clips):
    errors, recalls = [], []
    for clip, tracks, visible in tracked_clips:
        truth, truly_visible = clip.track_points(grid_points(clip.spec.width, clip.spec.height, 16), frame=0)
        both = visible & truly_visible
        errors.append(np.linalg.norm(tracks - truth, axis=-1)[both])
        recalls.append(both.sum() / truly_visible.sum())
        # points the tracker calls visible are (almost always) truly visible
        assert (visible & ~truly_visible).sum() / visible.sum() < 0.05
    all_errors = np.concatenate(errors)
    print(
        f"LK tracker: median EPE {np.median(all_errors):.3f} px, p90 {np.percentile(all_errors, 90):.3f} px"
    )
    assert np.median(all_errors) <= 0.5
    assert max(np.median(e) for e in errors) <= 0.5  # each clip, not just the pool
    assert min(recalls) > 0.8


def test_motion_score_ranks_like_true_motion():
    true_motion, scores = [], []
    backend = DISFlow("fast")
    for seed in range(12):
        clip = render_clip(random_clip_spec(200 + seed, num_frames=12))
        true_motion.append(float(clip.mean_motion().mean()))
        scores.append(motion_score(clip.frames, backend, short_side=256))
    rho = spearmanr(true_motion, scores).statistic
    print(f"motion score vs true mean motion: Spearman {rho:.3f}")
    assert np.ptp(true_motion) > 1.0  # the clips really differ in speed
    assert rho >= 0.9
