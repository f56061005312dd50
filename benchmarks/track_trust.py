"""Track trust on the perturbed synthetic world: share of visible steps off by > 3 px and > 10 px.

For each perturbation (none, flicker, noise, fast motion, occlusion) and seed, the clip goes through the
curation path (H.264 at the curation settings, decoded, grid-tracked with the configured tracker) and
its visibility is taken as the tracker gives it (``track_trust="none"``, the old behaviour) and after
the trust checks (``CurationConfig().track_trust``, default ``fb+flow``). Shares are over all visible
steps of all seeds (see ``imageconductor.synthetic.perturb.track_error_shares``).

    python benchmarks/track_trust.py [--seeds 12] [--first-seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imageconductor.curation.config import CurationConfig
from imageconductor.curation.stages import tracker_for, trust_visibility
from imageconductor.synthetic.perturb import PERTURBATIONS, perturbed_clip, track_error_shares
from imageconductor.trajectories import grid_points
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes


def pooled(results: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
    """Error shares over several clips, pooled (clips of equal size are concatenated along the points)."""
    return track_error_shares(*(np.concatenate(parts, axis=1) for parts in zip(*results, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    config = CurationConfig()
    tracker = tracker_for(config)
    print(
        f"track trust {config.track_trust!r}: fb {config.trust_fb_px} px, flow {config.trust_flow_px} px + "
        f"{config.trust_flow_rel:g}|flow|; {args.seeds} clips per row, {config.grid_size}x{config.grid_size} grid"
    )
    header = f"{'perturbation':<12} {'trust':<8} {'visible steps':>13} {'off >3 px':>10} {'off >10 px':>11} {'kept':>6}"
    print(header)
    print("-" * len(header))
    for perturbation in PERTURBATIONS:
        start = time.perf_counter()
        before, after = [], []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            case = perturbed_clip(seed, perturbation, width=config.width, height=config.height)
            frames = decode_mp4_bytes(
                encode_mp4_bytes(case.frames, config.output_fps, config.crf, config.x264_preset)
            )
            points = grid_points(config.width, config.height, config.grid_size)
            truth, true_visible = case.track_points(points)
            tracks, visible = tracker(frames, points)
            trusted = trust_visibility(frames, tracks, visible, config)
            before.append((tracks, visible, truth, true_visible))
            after.append((tracks, trusted, truth, true_visible))
        for label, results in (("none", before), (config.track_trust, after)):
            shares = pooled(results)
            print(
                f"{perturbation:<12} {label:<8} {shares.steps:>13} {shares.off_3px:>10.2%} "
                f"{shares.off_10px:>11.2%} {shares.kept:>6.1%}"
            )
        print(f"{'':<12} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
