"""Write the shipped example inputs (first frame, trajectories, prompt) from held-out synthetic clips.

    python scripts/make_examples.py [--out src/imageconductor/assets/examples]

The object example is the first frame of a synthetic object clip with the exact path of its moving
sprite(s) as the trajectory file and the clip's caption as the prompt; the camera example is the first
frame of a synthetic camera clip with exact background-point tracks. Seeds are outside the range the
embedded default was trained on (training draws world seeds from ``SeedSequence([0, index])``).
The frames are rendered at 384x256 with the default model's background smoothness scaled to that size
(its ``texture_scale`` x 384 / its width), so that resized to the model's frame they look like its
training clips.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import PIL.Image

from imageconductor.evaluation.cases import synthetic_clip_suite
from imageconductor.trajectories import save_trajectories

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "imageconductor" / "assets" / "examples"
EXAMPLES = {"object": 20_005, "camera": 20_002}
WIDTH, HEIGHT = 384, 256


def default_texture_scale() -> float:
    """The embedded default's ``texture_scale`` at 384 pixels wide (1 without a model info file)."""
    from imageconductor.pipelines import default_model_path, read_model_info

    folder = default_model_path()
    info = read_model_info(folder) if folder is not None else {}
    if not info:
        return 1.0
    return float(info.get("texture_scale", 1.0)) * WIDTH / float(info["width"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--frames", type=int, default=16, help="points per track (default 16)")
    parser.add_argument("--texture-scale", type=float, default=None, help="default: see above")
    args = parser.parse_args(argv)
    texture_scale = args.texture_scale if args.texture_scale is not None else default_texture_scale()
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, seed in EXAMPLES.items():
        _, cases = synthetic_clip_suite(kind, [seed], args.frames, WIDTH, HEIGHT, texture_scale)
        case = cases[0]
        PIL.Image.fromarray(case.image).save(args.out / f"{kind}_first_frame.png")
        save_trajectories(case.trajectories, args.out / f"{kind}_trajectory.json")
        (args.out / f"{kind}_prompt.txt").write_text(case.prompt + "\n")
        print(
            f"{kind}: seed {seed}, texture scale {texture_scale:g}, {len(case.trajectories)} track(s), prompt {case.prompt!r}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
