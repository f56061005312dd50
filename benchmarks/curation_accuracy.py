"""Curation's stages against the synthetic world's exact ground truth, and the world's own speed.

Prints:
- cut detection (the curation's decode + PySceneDetect stage) on raw videos with injected hard cuts:
  recall and false-cut rate, a cut counted when found within one frame (target >= 95% found, <= 5% false);
- the curation's Lucas-Kanade tracker on a 16 x 16 grid over 32-frame clips, on rendered frames and after
  the MP4 round trip curation stores: end-point error of points marked visible (median, p90, per clip
  kind; target median <= 0.5 px), visible recall and the share marked visible while truly hidden;
- the curation's motion score (DIS) against the true motion: Spearman correlation with the clips' RMS and
  mean motion (target >= 0.9);
- rendering speed of the synthetic world, with the MP4 encode of the same frames as the baseline.

    python benchmarks/curation_accuracy.py [--raw-videos 10] [--track-clips 24] [--motion-clips 48]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

from imageconductor.curation.cuts import cut_frames, detect_scenes
from imageconductor.curation.decode import decode_video
from imageconductor.curation.motion import DISFlow, motion_score
from imageconductor.curation.tracking import LucasKanadeTracker
from imageconductor.synthetic import random_clip_spec, render_clip, write_raw_video
from imageconductor.trajectories import grid_points
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes, write_mp4

KINDS = ("camera", "object", "mixed")


def measure_cuts(count: int, folder: Path) -> None:
    """Recall and false cuts of the cut stage on raw videos of five scenes each."""
    hits = false = found_total = true_total = 0
    for seed in tqdm(range(count), desc="cut detection"):
        path = folder / f"raw{seed}.mp4"
        info = write_raw_video(path, seed=5000 + seed, num_scenes=5, frames_per_scene=(20, 80))
        video = decode_video(path, 256, 384, 256)
        found = cut_frames(detect_scenes(video.frames, video.fps))
        hits += sum(any(abs(f - t) <= 1 for f in found) for t in info.cut_frames)
        false += sum(not any(abs(f - t) <= 1 for t in info.cut_frames) for f in found)
        found_total += len(found)
        true_total += len(info.cut_frames)
        path.unlink()
    print(
        f"cut detection ({count} raw videos, {true_total} injected cuts, +-1 frame): "
        f"found {hits}/{true_total} = {hits / true_total:.1%}, false cuts {false}/{found_total} = "
        f"{false / max(found_total, 1):.1%}  (target >= 95%, <= 5%)"
    )


def measure_tracking(count: int, via_mp4: bool) -> None:
    """End-point error of the points the tracker keeps visible, per clip kind."""
    tracker = LucasKanadeTracker()
    per_kind: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
    recalls, false_visible = [], []
    source = "via MP4" if via_mp4 else "rendered frames"
    for seed in tqdm(range(count), desc=f"tracking ({source})"):
        kind = KINDS[seed % 3]
        clip = render_clip(random_clip_spec(7000 + seed, kind=kind, num_frames=32))
        points = grid_points(clip.spec.width, clip.spec.height, 16).astype(np.float32)
        truth, truly_visible = clip.track_points(points, frame=0)
        frames = decode_mp4_bytes(encode_mp4_bytes(clip.frames, 8, 15)) if via_mp4 else clip.frames
        tracks, visible = tracker(frames, points)
        both = visible & truly_visible
        per_kind[kind].append(np.linalg.norm(tracks - truth, axis=-1)[both])
        recalls.append(both.sum() / truly_visible.sum())
        false_visible.append((visible & ~truly_visible).sum() / max(visible.sum(), 1))
    everything = np.concatenate([e for errors in per_kind.values() for e in errors])
    print(
        f"LK tracker ({count} clips, 32 frames, 16x16 grid, {source}): median EPE {np.median(everything):.3f} px "
        f"(target <= 0.5), p90 {np.percentile(everything, 90):.3f} px; visible recall {np.mean(recalls):.3f}, "
        f"visible-but-truly-hidden {np.mean(false_visible):.3%}"
    )
    for kind, errors in per_kind.items():
        if errors:
            pooled = np.concatenate(errors)
            print(f"  {kind:<7} median {np.median(pooled):.3f} px, p90 {np.percentile(pooled, 90):.3f} px")


def measure_motion(count: int) -> None:
    """Spearman correlation of the motion score with the clips' true motion."""
    true_rms, true_mean, scores = [], [], []
    backend = DISFlow("fast")
    for seed in tqdm(range(count), desc="motion scores"):
        clip = render_clip(random_clip_spec(9000 + seed, num_frames=16))
        true_rms.append(float(clip.rms_motion().mean()))
        true_mean.append(float(clip.mean_motion().mean()))
        scores.append(motion_score(clip.frames, backend, short_side=256))
    print(
        f"motion score vs true motion ({count} clips of 16 frames, true mean motion {min(true_mean):.2f}.."
        f"{max(true_mean):.2f} px/frame): Spearman vs rms_motion {spearmanr(scores, true_rms).statistic:.3f}, "
        f"vs mean_motion {spearmanr(scores, true_mean).statistic:.3f}  (target >= 0.9)"
    )


def measure_speed(folder: Path) -> None:
    """Frames per second of rendering, next to the MP4 encode of the same frames."""
    specs = [random_clip_spec(seed, num_frames=32) for seed in range(8)]
    start = time.perf_counter()
    clips = [render_clip(spec) for spec in specs]
    render_s = time.perf_counter() - start
    start = time.perf_counter()
    for clip in clips:
        write_mp4(clip.frames, folder / "speed.mp4", crf=18)
    encode_s = time.perf_counter() - start
    frames = 32 * len(clips)
    print("speed (8 clips of 32 frames at 384x256, one process):")
    print(f"  render_clip        {frames / render_s:8.1f} frames/s")
    print(f"  write_mp4 baseline {frames / encode_s:8.1f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-videos", type=int, default=10, help="raw videos (5 scenes each) for cuts")
    parser.add_argument("--track-clips", type=int, default=24, help="clips for the tracker")
    parser.add_argument("--motion-clips", type=int, default=48, help="clips for the motion score")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="ic-curation-accuracy-") as folder:
        measure_cuts(args.raw_videos, Path(folder))
        for via_mp4 in (False, True):
            measure_tracking(args.track_clips, via_mp4)
        measure_motion(args.motion_clips)
        measure_speed(Path(folder))


if __name__ == "__main__":
    main()
