"""Guidance rows and how their noise predictions are combined (classifier-free and camera-free guidance).

Every sampling step evaluates the noise model on a few *guidance rows* that share the noisy latents
and the image / trajectory conditions and differ only in the text embedding (negative or positive
prompt) and in the LoRA adapter active in the motion (flow) ControlNet. A :class:`GuidancePlan` lists
those rows in batch order and turns their predictions into one guided prediction:

* plain classifier-free guidance (the released code), ``guidance_scale = s``::

      rows = [negative / mode, positive / mode]
      eps  = eps_neg + s * (eps_pos - eps_neg)

* camera-free guidance (paper Eq. 5), ``guidance_scale = λ_cfg``, ``camera_free_guidance = λ_traj``,
  θ₀ = the motion ControlNet without LoRA (adapter ``"none"``), θ_traj = the ControlNet with the
  trajectory adapter (``mode``, the object LoRA in the paper)::

      rows = [negative / none, positive / none, positive / mode]
      eps  = eps0(∅) + λ_cfg * (eps0(c) - eps0(∅)) + λ_traj * (eps_traj(c) - eps0(c))

As in the released code, guidance is switched off when ``guidance_scale <= 1``: the negative row is
dropped and ``λ_cfg`` counts as 1 (so camera-free guidance keeps only its two positive rows).

* motion guidance (this project's addition, off by default), ``motion_guidance_scale = s``: one more
  row, the positive prompt with trajectory control off (the motion ControlNet not run), and the
  trajectory condition's effect extrapolated like classifier-free guidance extrapolates the prompt's::

      rows = [..., positive / off]
      eps  = (the rule above) + (s - 1) * (eps_on(c) - eps_off(c))

  ``eps_on(c)`` is the positive row with the motion ControlNet as the rule above uses it: the mode
  adapter, or θ₀ under camera-free guidance. ``s = 1`` adds no row and changes nothing; ``s = 0`` with
  ``guidance_scale <= 1`` and no camera-free guidance gives the video with trajectory control off; ``s > 1``
  pushes the video further along the trajectories.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "ADAPTER_NAMES",
    "AdapterSelection",
    "GuidancePlan",
    "GuidanceRow",
    "camera_free_guidance",
    "classifier_free_guidance",
    "format_mode",
    "motion_guidance",
    "normalize_mode",
    "parse_mode",
    "plan_guidance",
]

#: The LoRA adapters the motion ControlNet carries (``"none"`` selects the adapter-free base).
ADAPTER_NAMES = ("camera", "object")

#: What one batch row asks of the flow ControlNet: an adapter name, ``"none"``, or blend weights.
AdapterSelection = str | Mapping[str, float]


def normalize_mode(mode: AdapterSelection) -> AdapterSelection:
    """Check a ``mode`` argument and return it in canonical form.

    Accepts ``"object"``, ``"camera"``, ``"none"`` or a mapping of adapter weights such as
    ``{"camera": 1.0, "object": 0.5}`` (returned as a plain ``dict`` of floats). Raises ValueError naming
    the offending value otherwise.
    """
    if isinstance(mode, str):
        if mode not in (*ADAPTER_NAMES, "none"):
            raise ValueError(
                f"mode must be 'object', 'camera', 'none' or a dict of adapter weights, got {mode!r}"
            )
        return mode
    if isinstance(mode, Mapping):
        if not mode:
            raise ValueError("mode as a dict of adapter weights must name at least one adapter")
        weights: dict[str, float] = {}
        for name, weight in mode.items():
            if name not in ADAPTER_NAMES:
                raise ValueError(
                    f"unknown adapter {name!r} in mode; known adapters: {', '.join(ADAPTER_NAMES)}"
                )
            try:
                value = float(weight)
            except (TypeError, ValueError):
                raise ValueError(f"adapter weight for {name!r} must be a number, got {weight!r}") from None
            if not torch.isfinite(torch.tensor(value)):
                raise ValueError(f"adapter weight for {name!r} must be finite, got {weight!r}")
            weights[name] = value
        return weights
    raise ValueError(f"mode must be a string or a dict of adapter weights, got {type(mode).__name__}")


def parse_mode(text: str) -> AdapterSelection:
    """The adapter selection written as text: ``object``, ``camera``, ``none`` or a blend such as
    ``camera=1,object=0.5``. Raises ValueError naming what is wrong."""
    text = text.strip()
    if "=" not in text:
        return normalize_mode(text)
    weights: dict[str, str] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not value.strip():
            raise ValueError(f"invalid mode {text!r}: write a blend like 'camera=1,object=0.5'")
        weights[name.strip()] = value.strip()
    return normalize_mode(weights)


def format_mode(mode: AdapterSelection) -> str:
    """The text form of an adapter selection, as `parse_mode` reads it (``camera=1,object=0.5``)."""
    mode = normalize_mode(mode)
    if isinstance(mode, str):
        return mode
    return ",".join(f"{name}={weight:g}" for name, weight in mode.items())


@dataclass(frozen=True)
class GuidanceRow:
    """One row group of the batched noise prediction: which text embedding and which flow adapter."""

    text: str  # "negative" or "positive"
    adapter: AdapterSelection
    flow: bool = True  # False: the motion ControlNet is not run for this row (trajectory control off)


def classifier_free_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """``eps_uncond + scale * (eps_cond - eps_uncond)`` (Ho & Salimans)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def camera_free_guidance(
    eps_base_uncond: torch.Tensor | None,
    eps_base_cond: torch.Tensor,
    eps_traj_cond: torch.Tensor,
    cfg_scale: float,
    traj_scale: float,
) -> torch.Tensor:
    """Paper Eq. 5: ``ε₀(∅) + λ_cfg (ε₀(c) − ε₀(∅)) + λ_traj (ε_traj(c) − ε₀(c))``.

    ``eps_base_uncond`` may be None when classifier-free guidance is off (``λ_cfg`` then counts as 1).
    """
    guided = (
        eps_base_cond
        if eps_base_uncond is None
        else classifier_free_guidance(eps_base_uncond, eps_base_cond, cfg_scale)
    )
    return guided + traj_scale * (eps_traj_cond - eps_base_cond)


def motion_guidance(
    guided: torch.Tensor, eps_flow_cond: torch.Tensor, eps_off_cond: torch.Tensor, scale: float
) -> torch.Tensor:
    """``guided + (scale - 1) * (eps_flow_cond - eps_off_cond)``: the trajectory condition's effect on the
    positive prediction, extrapolated (``scale`` 1 returns ``guided``)."""
    return guided + (scale - 1.0) * (eps_flow_cond - eps_off_cond)


@dataclass(frozen=True)
class GuidancePlan:
    """The guidance rows of one sampling step (batch order) and the rule that combines them."""

    rows: tuple[GuidanceRow, ...]
    guidance_scale: float
    camera_free_guidance: float | None
    motion_guidance_scale: float = 1.0

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    @property
    def uses_motion_guidance(self) -> bool:
        return any(not row.flow for row in self.rows)

    @property
    def uses_negative_prompt(self) -> bool:
        return any(row.text == "negative" for row in self.rows)

    def row_adapters(self, batch_size: int) -> list[AdapterSelection]:
        """Per-sample adapter list for a batch made of ``num_rows`` groups of ``batch_size`` samples."""
        return [row.adapter for row in self.rows for _ in range(batch_size)]

    def row_flow_scales(self, batch_size: int, flow_scale: float = 1.0) -> list[float]:
        """Per-sample factor on the motion-ControlNet residuals: ``flow_scale``, or 0 for rows without it."""
        return [flow_scale if row.flow else 0.0 for row in self.rows for _ in range(batch_size)]

    def combine(self, eps: torch.Tensor) -> torch.Tensor:
        """Turn the stacked predictions ``(num_rows * B, ...)`` into the guided prediction ``(B, ...)``."""
        if eps.shape[0] % self.num_rows:
            raise ValueError(f"expected a multiple of {self.num_rows} rows, got a batch of {eps.shape[0]}")
        parts = eps.chunk(self.num_rows)
        off_cond = None
        if self.uses_motion_guidance:
            *parts, off_cond = parts
        uses_cfg = self.uses_negative_prompt
        if self.camera_free_guidance is None:
            flow_cond = parts[-1]
            guided = classifier_free_guidance(*parts, self.guidance_scale) if uses_cfg else flow_cond
        else:
            base_uncond, flow_cond, traj_cond = parts if uses_cfg else (None, *parts)
            guided = camera_free_guidance(
                base_uncond, flow_cond, traj_cond, self.guidance_scale, self.camera_free_guidance
            )
        if off_cond is None:
            return guided
        return motion_guidance(guided, flow_cond, off_cond, self.motion_guidance_scale)


def plan_guidance(
    mode: AdapterSelection,
    guidance_scale: float,
    camera_free_guidance: float | None = None,
    motion_guidance_scale: float = 1.0,
    trajectory_control: bool = True,
) -> GuidancePlan:
    """Build the guidance rows for ``mode`` (see the module docstring for the formulas).

    With ``trajectory_control=False`` (the flow ControlNet not run at all) motion guidance adds no row: its
    term would be zero.

    Raises ValueError when camera-free guidance is asked for with ``mode="none"`` (θ_traj would equal θ₀),
    or when ``motion_guidance_scale`` is not a finite number ≥ 0.
    """
    mode = normalize_mode(mode)
    motion_guidance_scale = _check_motion_guidance_scale(motion_guidance_scale)
    use_cfg = guidance_scale > 1.0
    if camera_free_guidance is None:
        rows: Sequence[GuidanceRow] = [GuidanceRow("positive", mode)]
        if use_cfg:
            rows = [GuidanceRow("negative", mode), *rows]
    else:
        if mode == "none":
            raise ValueError(
                "camera_free_guidance needs a trajectory adapter (mode 'object', 'camera' or a blend), not 'none'"
            )
        rows = [GuidanceRow("positive", "none"), GuidanceRow("positive", mode)]
        if use_cfg:
            rows = [GuidanceRow("negative", "none"), *rows]
        camera_free_guidance = float(camera_free_guidance)
    if motion_guidance_scale != 1.0 and trajectory_control:
        rows = [*rows, GuidanceRow("positive", "none", flow=False)]
    return GuidancePlan(tuple(rows), float(guidance_scale), camera_free_guidance, motion_guidance_scale)


def _check_motion_guidance_scale(value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"motion_guidance_scale must be a finite number >= 0, got {value!r}")
    return float(value)
