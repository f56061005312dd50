"""Check that the synthetic world is usable for measuring curation: trackers and cut detectors work on it.

Prints:
- OpenCV pyramidal Lucas-Kanade (21x21, 3 levels, forward-backward check) end-point error against the
  exact ground truth, over random 32-frame 384x256 clips, on rendered frames and after an MP4 round
  trip (target: median <= 0.5 px for visible points);
- PySceneDetect ContentDetector recall / false-cut rate on raw videos with hard cuts (target: >= 95%
  found, <= 5% false);
- Spearman rank correlation between an RMS optical-flow motion score (OpenCV DIS MEDIUM) and the
  true motion (``rms_motion`` and ``mean_motion``) over random clips (target >= 0.9);
- rendering speed, next to the MP4 encode of the same frames as a baseline.

Run: python benchmarks/synthetic_world_checks.py [--clips 24] [--videos 10] [--motion-clips 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from imageconductor.synthetic import random_clip_spec, render_clip, write_raw_video
from imageconductor.video_io import read_video, write_mp4

LK_PARAMS = {
    "winSize": (21, 21),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
}


def track_lucas_kanade(frames: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chain LK frame to frame; a point stays tracked while LK succeeds and forward-backward error < 1 px."""
    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    tracks = np.zeros((len(frames), len(points), 2), dtype=np.float32)
    alive = np.ones((len(frames), len(points)), dtype=bool)
    tracks[0] = points
    current = points.astype(np.float32).reshape(-1, 1, 2)
    for t in range(1, len(frames)):
        forward, status, _ = cv2.calcOpticalFlowPyrLK(grays[t - 1], grays[t], current, None, **LK_PARAMS)
        backward, back_status, _ = cv2.calcOpticalFlowPyrLK(
            grays[t], grays[t - 1], forward, None, **LK_PARAMS
        )
        round_trip = np.linalg.norm(backward - current, axis=-1).ravel()
        ok = (status.ravel() == 1) & (back_status.ravel() == 1) & (round_trip < 1.0)
        alive[t] = alive[t - 1] & ok
        tracks[t] = forward.reshape(-1, 2)
        current = forward
    return tracks, alive


def lucas_kanade_errors(num_clips: int, via_mp4: bool, workdir: Path) -> dict[str, np.ndarray]:
    errors: dict[str, list[np.ndarray]] = {"camera": [], "object": [], "mixed": []}
    for seed in tqdm(range(num_clips), desc=f"LK on clips ({'mp4' if via_mp4 else 'raw frames'})"):
        clip = render_clip(random_clip_spec(seed, num_frames=32))
        frames = clip.frames
        if via_mp4:
            frames, _ = read_video(write_mp4(frames, workdir / "clip.mp4", crf=18))
        xs = np.linspace(8, clip.spec.width - 9, 16)
        ys = np.linspace(8, clip.spec.height - 9, 16)
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        truth, visible = clip.track_points(grid)
        tracks, alive = track_lucas_kanade(frames, grid)
        visible_so_far = np.cumprod(visible, axis=0).astype(bool)
        keep = (visible_so_far & alive)[1:]
        errors[clip.kind].append(np.linalg.norm(tracks - truth, axis=-1)[1:][keep])
    return {kind: np.concatenate(values) if values else np.zeros(0) for kind, values in errors.items()}


def report_lucas_kanade(num_clips: int, workdir: Path) -> None:
    for via_mp4 in (False, True):
        errors = lucas_kanade_errors(num_clips, via_mp4, workdir)
        everything = np.concatenate(list(errors.values()))
        source = "after MP4 crf 18" if via_mp4 else "rendered frames"
        print(f"LK end-point error, {num_clips} clips, {source}:")
        print(
            f"  all visible points: median {np.median(everything):.3f} px, "
            f"p90 {np.percentile(everything, 90):.3f} px  (target median <= 0.5)"
        )
        for kind, values in errors.items():
            if len(values):
                print(f"  {kind:>6}: median {np.median(values):.3f} px over {len(values)} point-frames")


def report_cuts(num_videos: int, workdir: Path) -> None:
    from scenedetect import ContentDetector, detect

    injected = found_true = found_false = 0
    for seed in tqdm(range(num_videos), desc="cut detection"):
        path = workdir / f"raw_{seed}.mp4"
        info = write_raw_video(path, seed=seed, num_scenes=5)
        scenes = detect(str(path), ContentDetector(threshold=27, min_scene_len=15), start_in_scene=True)
        found = [start.frame_num for start, _ in scenes[1:]]
        matched = [f for f in found if any(abs(f - cut) <= 1 for cut in info.cut_frames)]
        injected += len(info.cut_frames)
        found_true += len({cut for cut in info.cut_frames if any(abs(f - cut) <= 1 for f in found)})
        found_false += len(found) - len(matched)
        path.unlink()
    detections = found_true + found_false
    print(f"PySceneDetect ContentDetector(27) on {num_videos} raw videos, {injected} injected cuts:")
    print(
        f"  found {found_true / injected:.1%} of cuts, false cuts {found_false} "
        f"({found_false / max(detections, 1):.1%} of detections)  (target >= 95%, <= 5%)"
    )


def report_motion_scores(num_clips: int) -> None:
    from scipy.stats import spearmanr

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    scores, true_rms, true_mean = [], [], []
    for seed in tqdm(range(num_clips), desc="motion scores"):
        clip = render_clip(random_clip_spec(seed, num_frames=16))
        grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in clip.frames]
        rms = [
            np.sqrt((dis.calc(a, b, None) ** 2).sum(-1).mean())
            for a, b in zip(grays, grays[1:], strict=False)
        ]
        scores.append(np.mean(rms))
        true_rms.append(clip.rms_motion().mean())
        true_mean.append(clip.mean_motion().mean())
    print(f"Spearman, RMS DIS flow score vs true motion, {num_clips} clips of 16 frames:")
    print(
        f"  vs rms_motion {spearmanr(scores, true_rms).statistic:.3f}, "
        f"vs mean_motion {spearmanr(scores, true_mean).statistic:.3f}  (target >= 0.9)"
    )


def report_speed(workdir: Path) -> None:
    specs = [random_clip_spec(seed, num_frames=32) for seed in range(8)]
    start = time.perf_counter()
    clips = [render_clip(spec) for spec in specs]
    render_s = time.perf_counter() - start
    start = time.perf_counter()
    for clip in clips:
        write_mp4(clip.frames, workdir / "speed.mp4", crf=18)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    for clip in clips:
        clip.track_points(np.random.default_rng(0).uniform(0, 255, (256, 2)))
    track_s = time.perf_counter() - start
    start = time.perf_counter()
    for clip in clips:
        clip.mean_motion()
    motion_s = time.perf_counter() - start
    frames = 32 * len(clips)
    print("Speed (8 clips of 32 frames at 384x256, one process):")
    print(f"  render_clip        {frames / render_s:8.1f} frames/s")
    print(f"  write_mp4 baseline {frames / encode_s:8.1f} frames/s")
    print(f"  track_points (256) {len(clips) / track_s:8.1f} clips/s")
    print(f"  mean_motion        {len(clips) / motion_s:8.1f} clips/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=24, help="random clips for the LK check")
    parser.add_argument("--videos", type=int, default=10, help="raw videos (5 scenes each) for the cut check")
    parser.add_argument(
        "--motion-clips", type=int, default=60, help="random clips for the motion-score check"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        report_lucas_kanade(args.clips, Path(workdir))
        report_cuts(args.videos, Path(workdir))
        report_motion_scores(args.motion_clips)
        report_speed(Path(workdir))


if __name__ == "__main__":
    main()
