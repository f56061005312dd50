"""Exception types of the curation pipeline."""

from __future__ import annotations


class CurationError(RuntimeError):
    """Base class for curation failures."""


class CurationConfigError(ValueError):
    """A curation setting is missing, unknown or out of range."""


class InputListError(ValueError):
    """The INPUT argument (folder, list file, CSV or JSONL manifest) cannot be used."""


class SkipInput(Exception):
    """Raised by a stage to drop one input; ``reason`` is a short machine-readable label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class BackendUnavailableError(CurationError):
    """An optional backend (RAFT, CoTracker, Ray) was requested but cannot be used."""
