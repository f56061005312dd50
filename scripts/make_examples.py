"""Write the shipped example inputs (first frame, trajectories, prompt) from held-out synthetic clips.

    python scripts/make_examples.py [--out src/imageconductor/assets/examples]

The object example is the first frame of a synthetic object clip with the exact path of its moving
sprite(s) as the trajectory file and the clip's caption as the prompt; the camera example is the first
frame of a synthetic camera clip with exact background-point tracks. Seeds are outside the range the
embedded default was trained on (training draws world seeds from ``SeedSequence([0, index])``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import PIL.Image

from imageconductor.evaluation.cases import synthetic_clip_suite
from imageconductor.trajectories import save_trajectories

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "imageconductor" / "assets" / "examples"
EXAMPLES = {"object": 20_005, "camera": 20_002}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--frames", type=int, default=16, help="points per track (default 16)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, seed in EXAMPLES.items():
        _, cases = synthetic_clip_suite(kind, [seed], num_frames=args.frames, width=384, height=256)
        case = cases[0]
        PIL.Image.fromarray(case.image).save(args.out / f"{kind}_first_frame.png")
        save_trajectories(case.trajectories, args.out / f"{kind}_trajectory.json")
        (args.out / f"{kind}_prompt.txt").write_text(case.prompt + "\n")
        print(f"{kind}: seed {seed}, {len(case.trajectories)} track(s), prompt {case.prompt!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
