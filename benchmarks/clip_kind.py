"""Clip-kind accuracy on the synthetic world: ``camera`` (camera-only motion) vs ``object`` labels.

Each clip is drawn by ``random_clip_spec(seed)`` (kinds camera, object and mixed alike), encoded at the
curation settings and annotated by the curation pass-2 stage (``annotate_clip``: tracking, track trust,
clip kind). Truth: ``camera`` for the world's camera-only clips, ``object`` for clips whose sprites
move (object and mixed). The thresholds were chosen on seeds 0-59; the default seeds 1000-1099 are
held out.

    python benchmarks/clip_kind.py [--seeds 100] [--first-seed 1000]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from imageconductor.curation.config import CurationConfig
from imageconductor.curation.stages import annotate_clip
from imageconductor.synthetic import random_clip_spec, render_clip
from imageconductor.video_io import encode_mp4_bytes


def true_kind(seed: int, config: CurationConfig) -> str:
    """``camera`` when the world's clip has camera motion only, else ``object``."""
    spec = random_clip_spec(seed, num_frames=config.num_frames, width=config.width, height=config.height)
    return "camera" if spec.kind == "camera" else "object"


def curated_kind(seed: int, config: CurationConfig) -> str:
    """The label the curation pass-2 stage gives the clip of ``seed``."""
    spec = random_clip_spec(seed, num_frames=config.num_frames, width=config.width, height=config.height)
    clip = encode_mp4_bytes(render_clip(spec).frames, config.output_fps, config.crf, config.x264_preset)
    result = annotate_clip(f"seed{seed}", clip, config)
    if result.error:
        raise RuntimeError(result.error)
    return result.info["kind"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=1000)
    args = parser.parse_args()
    config = CurationConfig()
    start = time.perf_counter()
    confusion: Counter[tuple[str, str]] = Counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        confusion[(true_kind(seed, config), curated_kind(seed, config))] += 1
    correct = confusion[("camera", "camera")] + confusion[("object", "object")]
    print(
        f"clip kind on seeds {args.first_seed}..{args.first_seed + args.seeds - 1} (track trust {config.track_trust!r})"
    )
    print(f"{'truth vs label':<14}{'camera':>8}{'object':>8}")
    for truth in ("camera", "object"):
        print(f"{truth:<14}{confusion[(truth, 'camera')]:>8}{confusion[(truth, 'object')]:>8}")
    print(
        f"accuracy {correct / args.seeds:.1%} ({correct}/{args.seeds}), {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
