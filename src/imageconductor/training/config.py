"""Training configuration: nested dataclasses that load from / save to YAML or JSON.

One `TrainingConfig` describes one training run of one stage:

- ``"vae"`` then ``"base"`` (stage 0, only for the embedded default): train the small autoencoder, then the
  small image-to-video base model (UNet with motion modules + SparseCtrl image ControlNet + text encoder),
  from scratch.
- ``"controlnet"``: train the motion (flow) ControlNet, full weights; dense→sparse trajectory curriculum.
- ``"camera"``: train the ``camera`` LoRA of the flow ControlNet on camera-only clips.
- ``"object"``: train the ``object`` LoRA with the camera LoRA active but frozen (paper Eq. 2) plus the
  orthogonal loss (Eq. 4).

Dotted overrides (``train.max_steps=10`` style, here ``max_steps=10`` or ``optim.learning_rate=3e-4``) are
applied with `apply_overrides` before the dict is turned into dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from imageconductor.models.vae import vae_scale_factor
from imageconductor.trajectories import FlowEncoding

STAGES = ("vae", "base", "controlnet", "camera", "object")
DATA_SOURCES = ("synthetic", "shards")
CLIP_KINDS = ("camera", "object", "mixed")
CURATED_CLIP_KINDS = ("camera", "object")
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
ORTHO_FORMS = ("cross", "identity", "stacked")
ORTHO_FACTORS = ("lora_A", "lora_B")
#: The copy of its config the trainer writes into every run folder.
SAVED_CONFIG_FILE = "training_config.yaml"


class ConfigError(ValueError):
    """A training configuration is malformed: the message names the offending key."""


@dataclass
class BaseModelConfig:
    """Sizes of the small base model built from scratch in stage 0 (see `training.base_model`)."""

    block_out_channels: list[int] = field(default_factory=lambda: [32, 64])
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention_head_dim: int = 8
    cross_attention_dim: int = 64
    motion_num_attention_heads: int = 4
    motion_max_seq_length: int = 32
    #: four levels downsample by 8 (SD's latent grid), three by 4 (a latent cell per 4x4 pixels); the flow
    #: ControlNet's input is the flow pixel-unshuffled by the same factor
    vae_block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64, 64])
    #: latent channels of the VAE; the UNet's input/output and the image ControlNet's condition follow it
    vae_latent_channels: int = 4
    #: GroupNorm groups of the VAE; None = min(32, narrowest level). Few groups keep each image's colour:
    #: with one channel per group, every norm layer erases the per-image mean of each channel.
    vae_norm_num_groups: int | None = None
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_max_length: int = 77
    vae_kl_weight: float = 1e-6
    train_text_encoder: bool = True
    #: stage "base" trains the flow ControlNet along with the UNet, fed the clips' trajectory condition (per
    #: ``data.curriculum``), so the UNet learns to move content where the condition says from the start
    #: (``data.flow_dropout`` of the clips train without it, so the model still works with control off)
    train_flow_controlnet: bool = False
    prediction_type: str = "epsilon"
    zero_terminal_snr: bool = False


@dataclass
class ModelConfig:
    """Where the networks come from and how the LoRA adapters are shaped."""

    pretrained_model_path: str | None = None
    flow_controlnet_path: str | None = None
    camera_lora_path: str | None = None
    object_lora_path: str | None = None
    lora_rank: int = 64
    lora_alpha: int | None = None
    base: BaseModelConfig = field(default_factory=BaseModelConfig)
    #: how tracks are blurred into the flow condition (`trajectories.FlowEncoding`; ``blur_sigma`` a number,
    #: "auto" or null). Unset: the pretrained model's encoding, or the released one for a model from scratch.
    flow_encoding: FlowEncoding | None = None


@dataclass
class CurriculumConfig:
    """Dense → sparse trajectory curriculum (paper §2.2): dense tracks first, then n ∈ [min, max] tracks.

    ``dense_steps`` optimizer steps use every track of the clip; afterwards each sample keeps
    ``n ~ U[sparse_min_tracks, sparse_max_tracks]`` tracks drawn with probability ∝ motion intensity.
    ``dense_steps = -1`` keeps dense trajectories for the whole run.
    """

    dense_steps: int = 0
    sparse_min_tracks: int = 1
    sparse_max_tracks: int = 8


@dataclass
class DataConfig:
    """Training clips: the synthetic world on the fly, or the curated WebDataset shards."""

    source: str = "synthetic"
    shards: list[str] = field(default_factory=list)
    num_frames: int = 16
    height: int = 256
    width: int = 384
    kinds: list[str] | None = None
    #: shards source: curated clip kinds to train on (``camera``: camera-only motion, ``object``: objects
    #: move); None = the stage's default (stage camera: ``["camera"]``, other stages: every clip)
    curated_kinds: list[str] | None = None
    num_clips: int = 10_000
    grid_size: int = 16
    #: synthetic source: multiplies the background's finest texture cell (> 1 = smoother scenes)
    texture_scale: float = 1.0
    #: synthetic source: multiplies every camera and sprite speed (> 1 = faster motion)
    motion_scale: float = 1.0
    #: synthetic source: multiplies every sprite's size (> 1 = larger objects)
    sprite_scale: float = 1.0
    num_workers: int = 0
    caption_dropout: float = 0.1
    #: stage "base" with ``model.base.train_flow_controlnet``: probability that a clip trains without the flow
    #: ControlNet (its residuals dropped, as with control off at inference)
    flow_dropout: float = 0.0
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def world_settings(self) -> dict[str, float]:
        """The synthetic world's settings (`imageconductor.synthetic.random_clip_spec` arguments) as keywords."""
        return {
            "texture_scale": self.texture_scale,
            "motion_scale": self.motion_scale,
            "sprite_scale": self.sprite_scale,
        }

    def synthetic_model_settings(self, seed: int) -> dict[str, Any]:
        """The pipeline settings of a model trained on these synthetic clips: the size it renders by default
        (``native_size``) and the world its evaluation reuses (``synthetic_world``). ``sprite_scale`` is
        stated only when it is not 1, so models built before it existed are written byte for byte as before."""
        world: dict[str, Any] = self.world_settings()
        if self.sprite_scale == 1.0:
            del world["sprite_scale"]
        return {
            "native_size": {"num_frames": self.num_frames, "height": self.height, "width": self.width},
            "synthetic_world": {**world, "seed": seed},
        }


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 0


@dataclass
class LossConfig:
    """Loss weights. The orthogonal loss (Eq. 4) only applies to the ``object`` stage.

    ``ortho_form``: ``"cross"`` penalises ``||W_cam W_obj^T||_F^2`` (orthogonal subspaces, the default),
    ``"identity"`` the paper's literal ``||I - W_cam W_obj^T||_F^2``, ``"stacked"``
    ``||I - W W^T||_F^2`` with ``W = [W_cam; W_obj]``. ``ortho_factor`` picks which LoRA factor is ``W``:
    the down-projections ``lora_A`` (rank × in) or the up-projections ``lora_B`` (used as rank × out).
    See `training.losses.orthogonal_loss`.
    """

    ortho_weight: float = 0.1
    ortho_form: str = "cross"
    ortho_factor: str = "lora_A"
    #: stage "vae", synthetic data: the squared error of sprite pixels counts ``1 + vae_sprite_weight``
    #: times (sprites are ~5% of a frame; a plain mean lets a small VAE blur them away)
    vae_sprite_weight: float = 0.0


@dataclass
class SampleConfig:
    """Sample videos written during training (``sample_every`` steps)."""

    num_inference_steps: int = 10
    guidance_scale: float = 7.5
    num_samples: int = 1
    seed: int = 1234


@dataclass
class TrainingConfig:
    """One training run of one stage."""

    stage: str = "controlnet"
    output_dir: str = "runs/train"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    sample_every: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    # ---- (de)serialisation -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Build a validated config from a (nested) dict; unknown keys raise `ConfigError`."""
        config = _build(cls, data, prefix="")
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> TrainingConfig:
        """Read a ``.yaml``/``.yml``/``.json`` file, apply dotted ``key=value`` overrides, validate."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"training config file not found: {path}")
        text = path.read_text()
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot parse {path}: {error}") from error
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
        return cls.from_dict(apply_overrides(data, overrides or []))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (``.json``) or YAML (anything else)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        else:
            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    # ---- checks ------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise `ConfigError` naming the first inconsistent setting."""
        _choice("stage", self.stage, STAGES)
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("data.source", self.data.source, DATA_SOURCES)
        _choice("optim.lr_scheduler", self.optim.lr_scheduler, LR_SCHEDULERS)
        _choice("loss.ortho_form", self.loss.ortho_form, ORTHO_FORMS)
        _choice("loss.ortho_factor", self.loss.ortho_factor, ORTHO_FACTORS)
        _choice("model.base.prediction_type", self.model.base.prediction_type, ("epsilon", "v_prediction"))
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "keep_checkpoints"):
            _positive(name, getattr(self, name))
        for name in ("checkpoint_every", "log_every", "sample_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 disables it), got {getattr(self, name)}")
        for name in (
            "num_frames",
            "height",
            "width",
            "num_clips",
            "grid_size",
            "texture_scale",
            "motion_scale",
            "sprite_scale",
        ):
            _positive(f"data.{name}", getattr(self.data, name))
        if not self.model.pretrained_model_path:  # a model built from scratch: its VAE's factor is known
            factor = vae_scale_factor(self.model.base.vae_block_out_channels)
            if self.data.height % factor or self.data.width % factor:
                raise ConfigError(
                    f"data.height and data.width must be multiples of {factor} (the VAE's factor), "
                    f"got {self.data.height}x{self.data.width}"
                )
        if self.data.kinds is not None:
            for kind in self.data.kinds:
                _choice("data.kinds[]", kind, CLIP_KINDS)
        if self.data.curated_kinds is not None:
            if not self.data.curated_kinds:
                raise ConfigError(
                    "data.curated_kinds must name at least one kind (or be null for the default)"
                )
            for kind in self.data.curated_kinds:
                _choice("data.curated_kinds[]", kind, CURATED_CLIP_KINDS)
        for name in ("caption_dropout", "flow_dropout"):
            if not 0.0 <= getattr(self.data, name) <= 1.0:
                raise ConfigError(f"data.{name} must lie in [0, 1], got {getattr(self.data, name)}")
        if self.data.flow_dropout > 0 and not (
            self.stage == "base" and self.model.base.train_flow_controlnet
        ):
            raise ConfigError(
                "data.flow_dropout only applies to stage 'base' with model.base.train_flow_controlnet: true"
            )
        if self.data.source == "shards" and not self.data.shards:
            raise ConfigError("data.source is 'shards' but data.shards lists no shard files")
        curriculum = self.data.curriculum
        if curriculum.dense_steps < -1:
            raise ConfigError(f"data.curriculum.dense_steps must be >= -1, got {curriculum.dense_steps}")
        if not 1 <= curriculum.sparse_min_tracks <= curriculum.sparse_max_tracks:
            raise ConfigError(
                "data.curriculum needs 1 <= sparse_min_tracks <= sparse_max_tracks, got "
                f"{curriculum.sparse_min_tracks}..{curriculum.sparse_max_tracks}"
            )
        _positive("model.lora_rank", self.model.lora_rank)
        if self.optim.learning_rate <= 0:
            raise ConfigError(f"optim.learning_rate must be > 0, got {self.optim.learning_rate}")
        if self.loss.ortho_weight < 0:
            raise ConfigError(f"loss.ortho_weight must be >= 0, got {self.loss.ortho_weight}")
        if self.loss.vae_sprite_weight < 0:
            raise ConfigError(f"loss.vae_sprite_weight must be >= 0, got {self.loss.vae_sprite_weight}")
        if self.loss.vae_sprite_weight > 0 and self.data.source != "synthetic":
            raise ConfigError(
                "loss.vae_sprite_weight needs data.source 'synthetic' (it knows the sprite pixels)"
            )
        if self.stage not in ("vae", "base") and not self.model.pretrained_model_path:
            raise ConfigError(f"stage {self.stage!r} needs model.pretrained_model_path (a base model folder)")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``"a.b.c=value"`` set (the value parsed as YAML)."""
    result = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key.sub_key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: cannot parse value: {error}") from error
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ValueError as error:  # a section that validates itself (e.g. model.flow_encoding)
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {error}") from None


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        for option in options[:-1]:
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        return _convert(options[-1], value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item_hint,) = typing.get_args(hint)
        return [_convert(item_hint, item, f"{key}[{i}]") for i, item in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {list(allowed)}, got {value!r}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key} must be > 0, got {value}")
