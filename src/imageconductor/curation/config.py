"""Curation settings: one dataclass, saved and loaded as JSON or YAML."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imageconductor.curation.errors import CurationConfigError

MOTION_BACKENDS = ("dis", "raft")
DIS_PRESETS = ("ultrafast", "fast", "medium")
TRACKERS = ("lk", "cotracker")
TRACK_TRUST_CHECKS = ("none", "fb", "flow", "fb+flow")
"""``none``: the tracker's own visibility; ``fb`` / ``flow``: one trust check; ``fb+flow``: both."""
DEFAULT_CAPTION_MODEL = "Salesforce/blip2-opt-2.7b"
"""The captioner the paper used (BLIP-2); ``caption_model`` names it or any other image-to-text model."""
INDEX_FORMATS = ("parquet", "jsonl")
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

# Settings that change what a sample contains; the rest (paths of engines, progress, workers) do not.
_RESULT_NEUTRAL_FIELDS = ("samples_per_shard", "index_format")


@dataclass
class CurationConfig:
    """Every knob of the curation pipeline (defaults follow the Image Conductor paper).

    The stage settings (everything but ``samples_per_shard`` and ``index_format``) form the
    fingerprint under which per-input results are cached, so changing them never reuses stale work.
    """

    seed: int = 0
    # decode
    max_source_frames: int | None = None
    # cut detection (PySceneDetect ContentDetector)
    scene_threshold: float = 27.0
    min_scene_len: int = 15
    # clip window and geometry
    num_frames: int = 32
    stride_min: int = 1
    stride_max: int = 16
    short_side: int = 256
    width: int = 384
    height: int = 256
    # motion score and the global filter
    motion_backend: str = "dis"
    dis_preset: str = "fast"
    raft_weights: str | None = None
    flow_short_side: int = 256
    motion_drop_fraction: float = 0.25
    # tracking
    tracker: str = "lk"
    cotracker_checkpoint: str | None = None
    grid_size: int = 16
    lk_window: int = 17
    lk_levels: int = 3
    fb_threshold: float = 1.0
    lk_max_error: float = 12.0
    # track trust (curation/track_trust.py): a point is visible only while its steps pass the checks
    track_trust: str = "fb+flow"  # "none" keeps the tracker's visibility
    trust_fb_px: float = 1.0  # largest round-trip miss (track back one frame) in pixels
    trust_flow_px: float = 2.0  # largest step-vs-dense-flow difference in pixels ...
    trust_flow_rel: float = 0.25  # ... plus this share of the flow's length
    # clip kind (curation/clip_kind.py): "camera" when one homography explains every point, else "object"
    kind_residual_px: float = 2.0
    kind_min_outlier_frames: int = 3
    kind_min_moving_points: int = 3
    kind_min_moving_share: float = 0.01
    # captions (curation/captioning.py): off unless a model id or folder is named; sidecar captions win
    caption_model: str | None = None
    caption_max_tokens: int = 30
    caption_device: str = "cpu"
    # output
    output_fps: int = 8
    crf: int = 15
    x264_preset: str = "veryfast"
    samples_per_shard: int = 256
    index_format: str = "parquet"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`CurationConfigError` naming the first bad setting."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise CurationConfigError(message)

        need(self.num_frames >= 2, f"num_frames must be >= 2, got {self.num_frames}")
        need(
            1 <= self.stride_min <= self.stride_max,
            f"need 1 <= stride_min <= stride_max, got stride_min={self.stride_min}, stride_max={self.stride_max}",
        )
        need(self.short_side >= 16, f"short_side must be >= 16, got {self.short_side}")
        need(self.width >= 16 and self.height >= 16, f"crop size too small: {self.width}x{self.height}")
        need(
            self.width % 2 == 0 and self.height % 2 == 0,
            f"crop size must be even for H.264, got {self.width}x{self.height}",
        )
        need(self.flow_short_side >= 16, f"flow_short_side must be >= 16, got {self.flow_short_side}")
        need(
            0.0 <= self.motion_drop_fraction < 1.0,
            f"motion_drop_fraction must be in [0, 1), got {self.motion_drop_fraction}",
        )
        need(
            self.motion_backend in MOTION_BACKENDS,
            f"motion_backend must be one of {MOTION_BACKENDS}, got {self.motion_backend!r}",
        )
        need(
            self.dis_preset in DIS_PRESETS,
            f"dis_preset must be one of {DIS_PRESETS}, got {self.dis_preset!r}",
        )
        need(self.tracker in TRACKERS, f"tracker must be one of {TRACKERS}, got {self.tracker!r}")
        need(self.grid_size >= 1, f"grid_size must be >= 1, got {self.grid_size}")
        need(
            self.lk_window >= 5 and self.lk_window % 2 == 1,
            f"lk_window must be odd >= 5, got {self.lk_window}",
        )
        need(self.lk_levels >= 0, f"lk_levels must be >= 0, got {self.lk_levels}")
        need(self.lk_max_error > 0, f"lk_max_error must be > 0, got {self.lk_max_error}")
        need(self.fb_threshold > 0, f"fb_threshold must be > 0, got {self.fb_threshold}")
        need(
            self.track_trust in TRACK_TRUST_CHECKS,
            f"track_trust must be one of {TRACK_TRUST_CHECKS}, got {self.track_trust!r}",
        )
        for name in ("trust_fb_px", "trust_flow_px", "kind_residual_px"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        need(self.trust_flow_rel >= 0, f"trust_flow_rel must be >= 0, got {self.trust_flow_rel}")
        need(
            self.kind_min_outlier_frames >= 1 and self.kind_min_moving_points >= 1,
            "kind_min_outlier_frames and kind_min_moving_points must be >= 1, got "
            f"{self.kind_min_outlier_frames} and {self.kind_min_moving_points}",
        )
        need(
            0.0 <= self.kind_min_moving_share <= 1.0,
            f"kind_min_moving_share must be in [0, 1], got {self.kind_min_moving_share}",
        )
        need(self.caption_max_tokens >= 1, f"caption_max_tokens must be >= 1, got {self.caption_max_tokens}")
        need(self.scene_threshold > 0, f"scene_threshold must be > 0, got {self.scene_threshold}")
        need(self.min_scene_len >= 1, f"min_scene_len must be >= 1, got {self.min_scene_len}")
        need(self.output_fps >= 1, f"output_fps must be >= 1, got {self.output_fps}")
        need(0 <= self.crf <= 51, f"crf must be in [0, 51], got {self.crf}")
        need(
            self.x264_preset in X264_PRESETS,
            f"x264_preset must be one of {X264_PRESETS}, got {self.x264_preset!r}",
        )
        need(self.samples_per_shard >= 1, f"samples_per_shard must be >= 1, got {self.samples_per_shard}")
        need(
            self.index_format in INDEX_FORMATS,
            f"index_format must be one of {INDEX_FORMATS}, got {self.index_format!r}",
        )
        need(
            self.max_source_frames is None or self.max_source_frames >= 2,
            f"max_source_frames must be None or >= 2, got {self.max_source_frames}",
        )

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurationConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CurationConfigError(f"unknown curation setting(s): {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=True))
        else:
            path.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CurationConfig:
        """Read a JSON or YAML config file (unknown keys are an error)."""
        path = Path(path)
        if not path.is_file():
            raise CurationConfigError(f"config file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - any parser error becomes a config error
            raise CurationConfigError(f"cannot parse config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise CurationConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> CurationConfig:
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """Short hash of the settings that decide sample contents (names the cache folder)."""
        data = {k: v for k, v in self.to_dict().items() if k not in _RESULT_NEUTRAL_FIELDS}
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
