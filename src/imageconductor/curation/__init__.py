"""Data curation: raw videos -> trajectory-annotated WebDataset shards (local or on Ray Data).

Stages (each its own module, each swappable): :mod:`.decode` (PyAV), :mod:`.cuts` (PySceneDetect),
:mod:`.motion` (DIS / RAFT flow score and the global percentile filter), :mod:`.clip` (window, resize,
crop), :mod:`.tracking` (LK / CoTracker grid tracks), :mod:`.shards` (WebDataset output). :func:`curate`
runs them with the local or the Ray engine; see ``docs/curation.md``.
"""

from __future__ import annotations

from imageconductor.curation.config import CurationConfig
from imageconductor.curation.errors import (
    BackendUnavailableError,
    CurationConfigError,
    CurationError,
    InputListError,
    SkipInput,
)
from imageconductor.curation.inputs import InputItem, discover_inputs
from imageconductor.curation.pipeline import CurationResult, DryRunReport, curate

__all__ = [
    "BackendUnavailableError",
    "CurationConfig",
    "CurationConfigError",
    "CurationError",
    "CurationResult",
    "DryRunReport",
    "InputItem",
    "InputListError",
    "SkipInput",
    "curate",
    "discover_inputs",
]
