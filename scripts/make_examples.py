"""Write the shipped example inputs (first frame, trajectories, prompt) from held-out synthetic clips.

    python scripts/make_examples.py [--out src/imageconductor/assets/examples]

The object example is the first frame of a synthetic object clip with the exact path of its moving
sprite(s) as the trajectory file and the clip's caption as the prompt; the camera example is the first
frame of a synthetic camera clip with exact background-point tracks. Seeds are outside the range the
embedded default was trained on (training draws world seeds from ``SeedSequence([0, index])``).
The frames are rendered at 384x256 with the default model's background smoothness scaled to that size
(its ``texture_scale`` x 384 / its width), with its ``motion_scale`` (speeds already scale with the frame)
and its clip length, so that resized to the model's frame they look and move like its training clips.
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


def default_world() -> tuple[int, float, float]:
    """The embedded default's frame count, ``texture_scale`` at 384 pixels wide and ``motion_scale``
    (16, 1, 1 without a model info file)."""
    from imageconductor.pipelines import default_model_path, read_model_info

    folder = default_model_path()
    info = read_model_info(folder) if folder is not None else {}
    if not info:
        return 16, 1.0, 1.0
    texture_scale = float(info.get("texture_scale", 1.0)) * WIDTH / float(info["width"])
    return int(info["num_frames"]), texture_scale, float(info.get("motion_scale", 1.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--frames", type=int, default=None, help="clip length = points per track")
    parser.add_argument("--texture-scale", type=float, default=None, help="default: see above")
    parser.add_argument("--motion-scale", type=float, default=None, help="default: see above")
    args = parser.parse_args(argv)
    default_frames, default_texture, default_motion = default_world()
    frames = args.frames if args.frames is not None else default_frames
    texture_scale = args.texture_scale if args.texture_scale is not None else default_texture
    motion_scale = args.motion_scale if args.motion_scale is not None else default_motion
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, seed in EXAMPLES.items():
        _, cases = synthetic_clip_suite(kind, [seed], frames, WIDTH, HEIGHT, texture_scale, motion_scale)
        case = cases[0]
        PIL.Image.fromarray(case.image).save(args.out / f"{kind}_first_frame.png")
        save_trajectories(case.trajectories, args.out / f"{kind}_trajectory.json")
        (args.out / f"{kind}_prompt.txt").write_text(case.prompt + "\n")
        print(
            f"{kind}: seed {seed}, {frames} frames, texture scale {texture_scale:g}, "
            f"motion scale {motion_scale:g}, "
            f"{len(case.trajectories)} track(s), prompt {case.prompt!r}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
