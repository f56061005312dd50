"""``imageconductor trajectories``: check, convert and create trajectory files.

imageconductor trajectories check tracks.json --size 384x256
imageconductor trajectories convert tracks.json --out official.json --official --size 768x512
imageconductor trajectories preset pan_left+zoom_in --out camera.json --frames 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imageconductor.cli.common import CLIError, finite_float, frame_size, output_file, positive_int

__all__ = ["add_parser", "run"]

_SOURCE_SIZE_HELP = (
    "WxH the points refer to when the file does not say (official list: default 384x256, the released "
    "canvas; Wan-Move and KJNodes files: required)"
)
_FORMAT_HELP = (
    "file format: rich, official, wanmove (tracks.npy + visibility.npy) or kjnodes (default: detected)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``trajectories`` command with its ``check``, ``convert`` and ``preset`` actions."""
    parser = subparsers.add_parser(
        "trajectories",
        help="check, convert and create trajectory files",
        description="Validate trajectory JSON files (official list of tracks or the rich format), convert "
        "between the formats and sizes, and write camera presets.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    check = actions.add_parser("check", help="validate a file and summarise it")
    check.add_argument("file", type=Path, help="trajectory file to check")
    check.add_argument("--size", type=frame_size, help=_SOURCE_SIZE_HELP)
    check.add_argument("--format", help=_FORMAT_HELP)
    check.add_argument(
        "--max-tracks", type=positive_int, default=8, help="largest allowed number of tracks (default 8)"
    )

    convert = actions.add_parser("convert", help="rescale and/or rewrite a file in another format")
    convert.add_argument("file", type=Path, help="trajectory file to read")
    convert.add_argument("--out", type=Path, required=True, help="file to write")
    convert.add_argument("--size", type=frame_size, help=_SOURCE_SIZE_HELP)
    convert.add_argument("--format", help=_FORMAT_HELP)
    convert.add_argument("--to-size", type=frame_size, help="WxH to rescale the points to")
    convert.add_argument(
        "--to",
        help="format to write: rich, official, wanmove or kjnodes (default: wanmove for a .npy --out, else rich)",
    )
    convert.add_argument(
        "--official",
        action="store_true",
        help="write the official list (drops kinds/strengths); = --to official",
    )
    convert.add_argument(
        "--frames",
        type=positive_int,
        help="wanmove: resample the tracks to this many frames (default: longest)",
    )

    preset = actions.add_parser(
        "preset", help="write a camera preset (pan_left, zoom_in, pan_left+zoom_in, ...)"
    )
    preset.add_argument("name", help="preset, e.g. pan_left, zoom_out, 'pan_right:40+zoom_in:0.2'")
    preset.add_argument("--out", type=Path, required=True, help="file to write")
    preset.add_argument("--frames", type=positive_int, default=16, help="points per track (default 16)")
    preset.add_argument(
        "--size", type=frame_size, default=(384, 256), help="WxH of the frame (default 384x256)"
    )
    preset.add_argument(
        "--magnitude", type=finite_float, help="pans: pixels; zooms: relative growth (default per preset)"
    )
    preset.add_argument("--grid", type=frame_size, default=(3, 3), help="CxR grid of points (default 3x3)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run one ``trajectories`` action; bad input raises the CLI's one-line error."""
    from imageconductor.trajectories import (
        TrajectoryError,
        camera_trajectories,
        load_trajectories,
        save_trajectories,
    )

    if args.action != "check":
        output_file(args.out, "--out")
    try:
        if args.action == "check":
            trajectories = load_trajectories(
                args.file, image_size=args.size, max_tracks=args.max_tracks, format=args.format
            )
            width, height = trajectories.image_size
            print(
                f"{args.file}: {len(trajectories)} track(s), kind {trajectories.kind}, frame {width}x{height}"
            )
            for index, (points, kind, strength) in enumerate(
                zip(trajectories.tracks, trajectories.kinds, trajectories.strengths, strict=True)
            ):
                start, end = points[0], points[-1]
                print(
                    f"  track {index}: {kind}, {len(points)} point(s), strength {strength:g}, "
                    f"({start[0]:.1f}, {start[1]:.1f}) -> ({end[0]:.1f}, {end[1]:.1f})"
                )
        elif args.action == "convert":
            trajectories = load_trajectories(
                args.file, image_size=args.size, target_size=args.to_size, max_tracks=None, format=args.format
            )
            save_trajectories(
                trajectories, args.out, official=args.official, format=args.to, num_frames=args.frames
            )
            print(f"wrote {args.out}")
        else:
            width, height = args.size
            trajectories = camera_trajectories(
                args.name, args.frames, height, width, magnitude=args.magnitude, grid=args.grid
            )
            save_trajectories(trajectories, args.out)
            print(f"wrote {args.out} ({len(trajectories)} camera tracks)")
    except TrajectoryError as error:
        raise CLIError(str(error)) from error
    except OSError as error:
        raise CLIError(f"cannot write {args.out}: {error}") from error
    return 0
