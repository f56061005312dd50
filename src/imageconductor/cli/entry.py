"""The ``imageconductor`` command: one sub-command per module of this package, on the common layer of
`imageconductor.cli.common`.

Expected failures (missing weights, unreadable image, bad trajectory file, bad arguments) print one line
``imageconductor: error: ...`` to stderr and exit with status 2, without a traceback; warnings of
imageconductor (a prompt longer than the text encoder reads) print one line ``imageconductor: warning: ...``
and the run goes on.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from imageconductor.cli import app, curate, evaluate, generate, train, trajectories
from imageconductor.cli.common import CLIError

__all__ = ["build_parser", "main"]

#: The command modules, in the order ``--help`` lists them.
COMMANDS = (generate, app, trajectories, curate, train, evaluate)


def package_version() -> str:
    """The installed version of imageconductor."""
    try:
        return version("imageconductor")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``imageconductor`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="imageconductor",
        description="Image Conductor: precise camera and object motion control for image-to-video generation.",
    )
    parser.add_argument("--version", action="version", version=f"imageconductor {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of imageconductor itself as one line ``imageconductor: warning: ...`` on stderr."""
    print(f"imageconductor: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imageconductor`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    default_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        own = category.__module__.startswith("imageconductor")
        (_show_warning if own else default_show)(message, category, filename, lineno, file, line)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            args = build_parser().parse_args(argv)
            return int(args.handler(args) or 0)
    except CLIError as exc:
        print(f"imageconductor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imageconductor: interrupted", file=sys.stderr)
        return 130
