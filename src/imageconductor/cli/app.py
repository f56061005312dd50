"""``imageconductor app``: serve the web app (draw trajectories on an image, generate, watch)."""

from __future__ import annotations

import argparse

from imageconductor.cli.common import (
    CLIError,
    add_scheduler_option,
    add_weight_options,
    check_scheduler_option,
    finite_float,
    load_pipeline,
    non_negative_float,
    positive_int,
    scheduler_config,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``app`` command."""
    parser = subparsers.add_parser(
        "app",
        help="serve the web app: draw trajectories on an image and watch the result",
        description="Start the web app on the embedded default model unless weights are given; open the "
        "printed address in a browser. Needs the app extra: pip install 'imageconductor[app]'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=7860, help="port to listen on (default 7860; 0 picks a free one)"
    )
    defaults = parser.add_argument_group("the settings the page starts with")
    defaults.add_argument("--steps", type=positive_int, help="sampling steps (default 25)")
    add_scheduler_option(defaults, "the sampler selected at first")
    defaults.add_argument("--guidance-scale", type=finite_float, help="CFG scale (default 7.5, as released)")
    defaults.add_argument(
        "--motion-guidance", type=non_negative_float, help="motion guidance (default 1 = off)"
    )
    add_weight_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the weights and serve the app until interrupted."""
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be from 0 to 65535, got {args.port}")
    try:
        from imageconductor.app import launch_app
    except ImportError as exc:
        raise CLIError(f"the web app needs Gradio: pip install 'imageconductor[app]' ({exc})") from exc
    defaults = {
        name: value
        for name, value in (
            ("steps", args.steps),
            ("guidance_scale", args.guidance_scale),
            ("motion_guidance", args.motion_guidance),
            ("scheduler", check_scheduler_option(args.scheduler, scheduler_config(args))),
        )
        if value is not None
    }
    pipe = load_pipeline(args)
    launch_app(pipe, host=args.host, port=args.port, defaults=defaults)
    return 0
