"""Motion score: RMS optical-flow magnitude between adjacent frames, and the global percentile filter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from imageconductor.curation.errors import BackendUnavailableError


class FlowBackend(Protocol):
    """Dense optical flow between two RGB uint8 frames of equal size -> (H, W, 2) float32 (dx, dy)."""

    def __call__(self, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray: ...


DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DISFlow:
    """OpenCV DIS optical flow; ``preset`` is "ultrafast", "fast" (default) or "medium"."""

    def __init__(self, preset: str = "fast") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}: use one of {tuple(DIS_PRESETS)}")
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])

    def __call__(self, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
        gray0 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY)
        gray1 = cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
        return self._dis.calc(gray0, gray1, None)


class RaftFlow:
    """RAFT flow from a user-supplied TorchScript file (nothing is downloaded).

    The scripted module is called as ``module(image1, image2)`` with (1, 3, H, W) float tensors in
    [-1, 1] (RAFT's convention) and must return a flow (1, 2, H, W) or a list of refinements whose last
    entry is the final flow (torchvision's RAFT returns such a list). H and W are padded to multiples of 8.
    """

    def __init__(self, weights_path: str | Path | None, device: str = "cpu") -> None:
        if not weights_path:
            raise BackendUnavailableError(
                "the RAFT motion backend needs a weights file: pass --raft-weights PATH "
                "(a TorchScript export of RAFT) or use --motion-backend dis"
            )
        path = Path(weights_path)
        if not path.is_file():
            raise BackendUnavailableError(f"RAFT weights file not found: {path}")

        try:
            self._module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001 - report any load failure with the file name
            raise BackendUnavailableError(f"cannot load RAFT TorchScript file {path}: {exc}") from exc
        self._device = device

    def __call__(self, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:

        height, width = frame0.shape[:2]
        pad_h, pad_w = (-height) % 8, (-width) % 8

        def to_tensor(frame: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
            tensor = tensor / 127.5 - 1.0
            return torch.nn.functional.pad(tensor, (0, pad_w, 0, pad_h), mode="replicate").to(self._device)

        with torch.inference_mode():
            out = self._module(to_tensor(frame0), to_tensor(frame1))
        if isinstance(out, (list, tuple)):
            out = out[-1]
        flow = out[0, :, :height, :width].permute(1, 2, 0).float().cpu().numpy()
        return np.ascontiguousarray(flow, dtype=np.float32)


def make_flow_backend(
    name: str = "dis", raft_weights: str | Path | None = None, dis_preset: str = "fast"
) -> FlowBackend:
    """Build the named flow backend: ``"dis"`` (default) or ``"raft"`` (needs ``raft_weights``)."""
    if name == "dis":
        return DISFlow(dis_preset)
    if name == "raft":
        return RaftFlow(raft_weights)
    raise ValueError(f"unknown motion backend {name!r}: use 'dis' or 'raft'")


def resize_to_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize one frame so that its shorter side is ``short_side`` (area filter when shrinking)."""
    height, width = frame.shape[:2]
    scale = short_side / min(height, width)
    if abs(scale - 1.0) < 1e-9:
        return frame
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interpolation)


def rms_flow(flow: np.ndarray) -> float:
    """Frobenius norm of the flow field divided by sqrt(H*W): the RMS per-pixel displacement."""
    flow = flow.astype(np.float64, copy=False)
    return float(math.sqrt(np.mean(flow[..., 0] ** 2 + flow[..., 1] ** 2)))


def motion_score(frames: np.ndarray, backend: FlowBackend, short_side: int | None = 256) -> float:
    """Mean over adjacent pairs of the RMS flow magnitude, in pixels of frames with short side ``short_side``."""
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames for a motion score, got {len(frames)}")
    resized = [resize_to_short_side(f, short_side) if short_side else f for f in frames]
    values = [rms_flow(backend(a, b)) for a, b in zip(resized[:-1], resized[1:], strict=True)]
    return float(np.mean(values))


def low_motion_keys(
    scores: Sequence[tuple[str, float]], drop_fraction: float
) -> tuple[set[str], float | None]:
    """The keys of the lowest ``floor(drop_fraction * n)`` scores over the whole dataset.

    Ranking is by (score, key), so ties are broken the same way on every run and engine. Returns the
    dropped keys and the threshold (the highest dropped score, or None when nothing is dropped).
    """
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
    ranked = sorted(scores, key=lambda item: (item[1], item[0]))
    num_drop = int(math.floor(drop_fraction * len(ranked) + 1e-9))
    dropped = ranked[:num_drop]
    threshold = dropped[-1][1] if dropped else None
    return {key for key, _ in dropped}, threshold
