"""Measure the curation stages against the synthetic world's exact ground truth (bigger than the tests).

Prints: cut detection recall and false-cut rate, LK tracker end-point error for visible points over
32-frame clips (through the stored MP4, per clip kind), and the Spearman correlation of the motion
score with the true mean motion.

    python scripts/curation_measure.py --raw-videos 10 --track-clips 24 --motion-clips 48
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

from imageconductor.curation.cuts import cut_frames, detect_scenes
from imageconductor.curation.decode import decode_video
from imageconductor.curation.motion import DISFlow, motion_score
from imageconductor.curation.tracking import LucasKanadeTracker, grid_points
from imageconductor.synthetic import random_clip_spec, render_clip, write_raw_video
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes


def measure_cuts(count: int, folder: Path) -> None:
    hits = false = found_total = true_total = 0
    for seed in range(count):
        path = folder / f"raw{seed}.mp4"
        info = write_raw_video(path, seed=5000 + seed, num_scenes=5, frames_per_scene=(20, 80))
        video = decode_video(path, 256, 384, 256)
        found = cut_frames(detect_scenes(video.frames, video.fps))
        hits += sum(any(abs(f - t) <= 1 for f in found) for t in info.cut_frames)
        false += sum(not any(abs(f - t) <= 1 for t in info.cut_frames) for f in found)
        found_total += len(found)
        true_total += len(info.cut_frames)
    print(
        f"cut detection ({count} raw videos, {true_total} injected cuts, +-1 frame): "
        f"found {hits}/{true_total} = {hits / true_total:.1%}, false cuts {false}/{found_total} = "
        f"{false / max(found_total, 1):.1%}"
    )


def measure_tracking(count: int) -> None:
    tracker = LucasKanadeTracker()
    per_kind: dict[str, list[np.ndarray]] = {}
    recalls, false_visible = [], []
    for seed in range(count):
        kind = ("camera", "object", "mixed")[seed % 3]
        clip = render_clip(random_clip_spec(7000 + seed, kind=kind, num_frames=32))
        points = grid_points(clip.spec.width, clip.spec.height, 16)
        truth, truly_visible = clip.track_points(points, frame=0)
        tracks, visible = tracker(decode_mp4_bytes(encode_mp4_bytes(clip.frames, 8, 15)), points)
        both = visible & truly_visible
        per_kind.setdefault(kind, []).append(np.linalg.norm(tracks - truth, axis=-1)[both])
        recalls.append(both.sum() / truly_visible.sum())
        false_visible.append((visible & ~truly_visible).sum() / max(visible.sum(), 1))
    everything = np.concatenate([e for errors in per_kind.values() for e in errors])
    print(
        f"LK tracker ({count} clips, 32 frames, 16x16 grid, via MP4): median EPE {np.median(everything):.3f} px, "
        f"p90 {np.percentile(everything, 90):.3f} px, worst clip median "
        f"{max(np.median(e) for errors in per_kind.values() for e in errors):.3f} px; "
        f"visible recall {np.mean(recalls):.3f}, visible-but-truly-hidden {np.mean(false_visible):.3%}"
    )
    for kind, errors in per_kind.items():
        pooled = np.concatenate(errors)
        print(f"  {kind:<7} median {np.median(pooled):.3f} px, p90 {np.percentile(pooled, 90):.3f} px")


def measure_motion(count: int) -> None:
    true_motion, scores = [], []
    backend = DISFlow("fast")
    for seed in range(count):
        clip = render_clip(random_clip_spec(9000 + seed, num_frames=16))
        true_motion.append(float(clip.mean_motion().mean()))
        scores.append(motion_score(clip.frames, backend, short_side=256))
    rho = spearmanr(true_motion, scores).statistic
    print(
        f"motion score vs true mean motion ({count} clips, true motion {min(true_motion):.2f}.."
        f"{max(true_motion):.2f} px/frame): Spearman {rho:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-videos", type=int, default=10)
    parser.add_argument("--track-clips", type=int, default=24)
    parser.add_argument("--motion-clips", type=int, default=48)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="ic-curation-measure-") as folder:
        measure_cuts(args.raw_videos, Path(folder))
    measure_tracking(args.track_clips)
    measure_motion(args.motion_clips)


if __name__ == "__main__":
    main()
