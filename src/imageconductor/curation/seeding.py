"""Per-input randomness that depends on the global seed and the input id, never on processing order."""

from __future__ import annotations

import hashlib

import numpy as np


def input_seed(global_seed: int, input_id: str, purpose: str = "") -> int:
    """A 64-bit seed derived from ``(global_seed, input_id, purpose)`` by SHA-256."""
    digest = hashlib.sha256(f"{int(global_seed)}\x00{input_id}\x00{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def input_rng(global_seed: int, input_id: str, purpose: str = "") -> np.random.Generator:
    """A NumPy generator seeded by :func:`input_seed`."""
    return np.random.default_rng(input_seed(global_seed, input_id, purpose))
