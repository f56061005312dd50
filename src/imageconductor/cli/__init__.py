"""The command line: ``imageconductor COMMAND ...`` (see `imageconductor.cli.entry`).

Layers: `common` (errors, argument types, weight and sampling options, pipeline loading) under one
module per command; no other package of imageconductor imports this one.
"""

from __future__ import annotations

from imageconductor.cli.entry import main

__all__ = ["main"]
