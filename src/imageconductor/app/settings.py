"""Generation settings of the app: the model's native video size, defaults, and checking what a person typed."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imageconductor.guidance import AdapterSelection, parse_mode
from imageconductor.pipelines import (
    DEFAULT_SCHEDULER,
    SCHEDULER_NAMES,
    VideoSize,
    check_scheduler,
    check_scheduler_name,
)

__all__ = [
    "GENERIC_DEFAULTS",
    "MAX_FRAMES",
    "MAX_STEPS",
    "MODE_CHOICES",
    "GenerationSettings",
    "SettingsError",
    "check_settings",
    "default_settings",
    "native_video_size",
    "parse_mode_text",
    "scheduler_choices",
]

#: Most sampling steps one request may ask for (the server is shared).
MAX_STEPS = 100
#: Most frames one request may ask for.
MAX_FRAMES = 64
#: The mode choices offered; a blend such as ``camera=1,object=0.5`` may be typed instead.
MODE_CHOICES = ("auto", "object", "camera", "none")


class SettingsError(ValueError):
    """A setting that cannot be used; the message is shown in the page."""


def native_video_size(pipe: Any) -> tuple[int, int, int]:
    """``(num_frames, height, width)`` the loaded model was made for: its ``native_size`` setting, else the
    released model's 16 x 256 x 384."""
    size = VideoSize.native(getattr(pipe, "config", None) or {})
    return size.num_frames, size.height, size.width


#: Settings offered when the model recommends none (the released sampler's).
GENERIC_DEFAULTS: dict[str, float | str] = {
    "steps": 25,
    "guidance_scale": 7.5,
    "motion_guidance": 1.0,
    "scheduler": DEFAULT_SCHEDULER,
}


def scheduler_choices(pipe: Any) -> list[str]:
    """The scheduler names that can sample ``pipe``'s model (see
    `imageconductor.pipelines.schedulers.check_scheduler`), in the order they are offered."""
    source = getattr(pipe, "scheduler_source_config", None)
    config = source() if callable(source) else getattr(getattr(pipe, "scheduler", None), "config", None)
    config = config or {}
    usable = []
    for name in SCHEDULER_NAMES:
        try:
            usable.append(check_scheduler(name, config))
        except ValueError:
            continue
    return usable


def default_settings(pipe: Any, overrides: Mapping[str, float | str] | None = None) -> dict[str, float | str]:
    """The settings the app starts with for ``pipe``: ``steps``, ``guidance_scale``, ``motion_guidance``,
    ``scheduler`` and ``frames`` (the model's native frame count).

    ``overrides`` (e.g. from the command line) replace :data:`GENERIC_DEFAULTS`. Unknown names raise
    SettingsError.
    """
    settings: dict[str, float | str] = {**GENERIC_DEFAULTS, "frames": native_video_size(pipe)[0]}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise SettingsError(f"unknown default setting(s) {unknown}; known: {sorted(settings)}")
    settings.update(overrides)
    usable = scheduler_choices(pipe)
    if settings["scheduler"] not in usable:
        raise SettingsError(
            f"scheduler {settings['scheduler']!r} cannot sample this model; choose one of {', '.join(usable)}"
        )
    return settings


def parse_mode_text(text: str | None) -> AdapterSelection | None:
    """``"auto"`` / empty -> None (camera for camera-only tracks, else object); otherwise the text form of
    `imageconductor.guidance.parse_mode` (``object``, ``camera``, ``none`` or ``camera=1,object=0.5``)."""
    text = (text or "").strip().lower()
    if text in ("", "auto"):
        return None
    try:
        return parse_mode(text)
    except ValueError as exc:
        raise SettingsError(
            f"mode {text!r}: {exc} (use auto, object, camera, none or a blend like 'camera=1,object=0.5')"
        ) from None


@dataclass(frozen=True)
class GenerationSettings:
    """Checked settings of one run (``mode`` None: chosen from the track kinds; ``seed`` always set)."""

    prompt: str
    negative_prompt: str | None
    mode: AdapterSelection | None
    steps: int
    guidance_scale: float
    camera_free_guidance: float | None
    motion_guidance: float
    num_frames: int
    seed: int
    scheduler: str = DEFAULT_SCHEDULER


def _whole(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


def _finite(value: Any, name: str, low: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (low is not None and number < low):
        bound = "" if low is None else f" >= {low:g}"
        raise SettingsError(f"{name} must be a finite number{bound}, got {value!r}")
    return number


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_settings(
    *,
    prompt: str | None,
    negative_prompt: str | None,
    mode: str | None,
    steps: Any,
    guidance_scale: Any,
    camera_free_guidance: Any,
    motion_guidance: Any,
    num_frames: Any,
    seed: Any,
    scheduler: Any = DEFAULT_SCHEDULER,
) -> GenerationSettings:
    """Check the raw values of the settings controls (or API parameters) into :class:`GenerationSettings`.

    An empty or negative ``seed`` draws a random one; an empty or zero ``camera_free_guidance`` leaves it
    off (the released sampler); an empty negative prompt is the pipeline's default; an empty ``scheduler``
    is DDIM. Raises SettingsError naming the setting at fault.
    """
    selection = parse_mode_text(mode)
    free = (
        None if _empty(camera_free_guidance) else _finite(camera_free_guidance, "camera-free guidance λ_traj")
    )
    if free == 0:
        free = None
    if not _empty(seed) and _finite(seed, "seed") < 0:
        seed = None
    if selection == "none" and free is not None:
        raise SettingsError("camera-free guidance needs mode object, camera, auto or a blend (not none)")
    try:
        sampler = DEFAULT_SCHEDULER if _empty(scheduler) else check_scheduler_name(scheduler)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return GenerationSettings(
        prompt=(prompt or "").strip(),
        negative_prompt=None if _empty(negative_prompt) else str(negative_prompt),
        mode=selection,
        steps=_whole(steps, "steps", 1, MAX_STEPS),
        guidance_scale=_finite(guidance_scale, "CFG scale"),
        camera_free_guidance=free,
        motion_guidance=_finite(motion_guidance, "motion guidance", low=0.0),
        num_frames=_whole(num_frames, "frames", 2, MAX_FRAMES),
        seed=random.randrange(2**31) if _empty(seed) else _whole(seed, "seed", 0, 2**63 - 1),
        scheduler=sampler,
    )
