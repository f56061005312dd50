"""``imageconductor generate``: animate an image along drawn trajectories."""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from imageconductor.cli.common import (
    CLIError,
    add_sampling_options,
    add_trajectory_size_option,
    add_weight_options,
    load_image,
    load_pipeline,
    load_trajectory_file,
    mode_argument,
    one_line,
    output_file,
    positive_float,
    positive_int,
    resolve_device,
    resolve_video_size,
    sampling_settings,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``generate`` command."""
    parser = subparsers.add_parser(
        "generate",
        help="animate an image along drawn trajectories",
        description="Generate a video from a first frame, a prompt and trajectories. Writes an H.264 MP4, "
        "optionally a GIF, a side-by-side video (generated | generated with the trajectories drawn) and, with "
        "--strip, a PNG of frames side by side with the trajectories drawn as arrows.",
    )
    parser.add_argument("--image", required=True, type=Path, help="first frame (any image Pillow reads)")
    parser.add_argument("--prompt", required=True, help="text prompt")
    parser.add_argument("--negative-prompt", default=None, help="negative prompt (default: empty)")
    parser.add_argument(
        "--trajectories",
        required=True,
        type=Path,
        help="trajectory JSON: the official list of tracks ([[x, y], ...] drawn on the released 384x256 "
        "canvas, see --trajectory-size) or the richer format with image_size / kinds / strengths; "
        "rescaled to the video size",
    )
    add_trajectory_size_option(parser)
    parser.add_argument(
        "--mode",
        default=None,
        type=mode_argument,
        help="flow adapter: object, camera, none, or a blend like 'camera=1,object=0.5' "
        "(default: camera if every track is a camera track, else object)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output .mp4 path")
    parser.add_argument("--gif", action="store_true", help="also write a GIF next to the MP4")
    parser.add_argument("--no-side-by-side", action="store_true", help="skip the side-by-side video")
    parser.add_argument(
        "--strip",
        type=Path,
        metavar="FILE.png",
        help="also write a PNG of evenly spaced frames side by side: a row with the trajectories drawn as "
        "arrows up to each frame's time and its frame index, over a row of the frames as generated "
        "(frames enlarged to at least 128 px tall)",
    )
    parser.add_argument(
        "--strip-frames",
        type=positive_int,
        metavar="N",
        help="frames in the --strip image, from the first to the last (default 8, or every frame of a "
        "shorter video)",
    )
    parser.add_argument(
        "--fps", type=positive_float, default=8.0, help="frames per second of the outputs (default 8)"
    )
    add_sampling_options(parser, seed_help="random seed (default: random, printed)", seed_default=None)
    add_weight_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Check every argument and input, load the weights, sample, then write the MP4 (+ GIF), the
    side-by-side video and the strip image all at once (none of them when anything fails)."""
    from imageconductor.pipelines import output_to_uint8
    from imageconductor.video_outputs import write_generation_outputs

    # Every argument and input is checked before the weights load.
    if args.out.suffix.lower() != ".mp4":
        raise CLIError(f"--out must end in .mp4, got {args.out}")
    output_file(args.out, "--out")
    if args.strip is not None:
        if args.strip.suffix.lower() != ".png":
            raise CLIError(f"--strip must end in .png, got {args.strip}")
        output_file(args.strip, "--strip")
    elif args.strip_frames is not None:
        raise CLIError("--strip-frames needs --strip FILE.png")
    args.device = resolve_device(args.device)
    size = resolve_video_size(args)
    if args.strip_frames is not None and args.strip_frames > size.num_frames:
        raise CLIError(
            f"--strip-frames must be at most the video's {size.num_frames} frames, got {args.strip_frames}"
        )
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    settings = sampling_settings(args, size, seed)
    image = load_image(args.image)
    trajectory_set = load_trajectory_file(
        args.trajectories, size.width, size.height, source_size=args.trajectory_size
    )
    started = time.perf_counter()
    pipe = load_pipeline(args, settings)
    print(f"generating with seed {seed} ...", file=sys.stderr)
    try:
        result = pipe(
            prompt=args.prompt,
            negative_prompt=args.negative_prompt,
            image=image,
            trajectories=trajectory_set,
            output_type="pt",
            decode_chunk_size=args.decode_chunk_size,
            **settings.pipeline_kwargs(),
        )
    except ValueError as exc:
        raise CLIError(one_line(exc)) from exc
    frames = output_to_uint8(result.frames)
    try:
        written = write_generation_outputs(
            frames,
            trajectory_set,
            args.out,
            fps=args.fps,
            gif=args.gif,
            with_side_by_side=not args.no_side_by_side,
            strip=args.strip,
            strip_frames=args.strip_frames,
        )
    except OSError as exc:
        raise CLIError(f"cannot write the outputs next to {args.out}: {one_line(exc)}") from exc
    for path in written.values():
        print(f"wrote {path}", file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
