"""Which parameters train in each stage, and the adapter set-up of the flow ControlNet per stage.

=============  =====================================================  ==================================
stage          trains                                                 flow-ControlNet adapters active
=============  =====================================================  ==================================
vae            the VAE                                                (flow ControlNet unused)
base           UNet (incl. motion modules), image ControlNet,         none (flow ControlNet unused unless
               text encoder (optional), flow ControlNet (optional:    it trains along)
               ``model.base.train_flow_controlnet``)
controlnet     flow ControlNet, every non-LoRA weight                 none (adapters disabled)
camera         ``camera`` LoRA only                                   camera
object         ``object`` LoRA only; camera LoRA frozen (stop-grad)   camera + object (paper Eq. 2)
=============  =====================================================  ==================================

peft's ``set_adapter`` / ``enable_adapters`` set ``requires_grad=True`` on every adapter they activate,
so `activate_adapters` always re-applies the stage's freezing afterwards; call it (not peft directly)
whenever the active adapters change during training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from imageconductor.training.config import STAGES

CAMERA_ADAPTER = "camera"
OBJECT_ADAPTER = "object"

#: adapters of the flow ControlNet that are active in the forward pass of each stage
STAGE_ACTIVE_ADAPTERS: dict[str, tuple[str, ...]] = {
    "vae": (),
    "base": (),
    "controlnet": (),
    "camera": (CAMERA_ADAPTER,),
    "object": (CAMERA_ADAPTER, OBJECT_ADAPTER),
}

#: the adapter whose weights train in each LoRA stage
STAGE_TRAINED_ADAPTER: dict[str, str | None] = {
    "vae": None,
    "base": None,
    "controlnet": None,
    "camera": CAMERA_ADAPTER,
    "object": OBJECT_ADAPTER,
}


@dataclass
class StageModels:
    """The networks a stage touches (any may be ``None`` where the stage does not use it)."""

    unet: nn.Module | None = None
    image_controlnet: nn.Module | None = None
    flow_controlnet: nn.Module | None = None
    text_encoder: nn.Module | None = None
    vae: nn.Module | None = None

    def named_models(self) -> list[tuple[str, nn.Module]]:
        names = ("unet", "image_controlnet", "flow_controlnet", "text_encoder", "vae")
        return [(name, getattr(self, name)) for name in names if getattr(self, name) is not None]


def adapter_of_parameter(parameter_name: str) -> str | None:
    """The peft adapter a parameter belongs to (``...lora_A.camera.weight`` → ``"camera"``), else None."""
    parts = parameter_name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.startswith("lora_") and i + 1 < len(parts):
            return parts[i + 1]
    return None


def is_trainable_parameter(
    stage: str,
    model_name: str,
    parameter_name: str,
    train_text_encoder: bool,
    base_trains_flow: bool = False,
) -> bool:
    """The stage rule for one parameter of one network (names as in `StageModels`); ``base_trains_flow``:
    stage "base" trains the flow ControlNet's (non-LoRA) weights too."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {list(STAGES)}")
    adapter = adapter_of_parameter(parameter_name)
    if stage == "vae":
        return model_name == "vae"
    if stage == "base":
        if model_name == "text_encoder":
            return train_text_encoder
        if model_name == "flow_controlnet":
            return base_trains_flow and adapter is None
        return model_name in ("unet", "image_controlnet") and adapter is None
    if model_name != "flow_controlnet":
        return False
    if stage == "controlnet":
        return adapter is None
    return adapter == STAGE_TRAINED_ADAPTER[stage]


def apply_stage_freezing(
    stage: str, models: StageModels, train_text_encoder: bool = True, base_trains_flow: bool = False
) -> list[nn.Parameter]:
    """Set ``requires_grad`` on every parameter per the stage rule; return the trainable ones.

    Raises ``ValueError`` when the stage would train nothing (e.g. the LoRA adapter is missing).
    """
    trainable: list[nn.Parameter] = []
    for model_name, model in models.named_models():
        for name, parameter in model.named_parameters():
            flag = is_trainable_parameter(stage, model_name, name, train_text_encoder, base_trains_flow)
            parameter.requires_grad_(flag)
            if flag:
                trainable.append(parameter)
    if not trainable:
        adapter = STAGE_TRAINED_ADAPTER.get(stage)
        hint = f" (is the {adapter!r} LoRA adapter injected into the flow ControlNet?)" if adapter else ""
        raise ValueError(f"stage {stage!r} has no trainable parameters{hint}")
    return trainable


def activate_adapters(
    model: nn.Module,
    adapter_names: Sequence[str],
    stage: str,
    models: StageModels,
    train_text_encoder: bool = True,
    base_trains_flow: bool = False,
) -> None:
    """Activate ``adapter_names`` on every peft layer of ``model`` (none: disable adapters), then re-freeze.

    The re-freeze undoes peft's habit of enabling gradients on every adapter it activates, so a frozen
    adapter (the camera LoRA in the object stage) stays frozen.
    """
    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    for layer in layers:
        missing = [name for name in adapter_names if name not in layer.lora_A]
        if missing:
            raise ValueError(f"adapter(s) {missing} not found in LoRA layer; it has {sorted(layer.lora_A)}")
        if adapter_names:
            layer.enable_adapters(True)
            layer.set_adapter(list(adapter_names))
        else:
            layer.enable_adapters(False)
    if adapter_names and not layers:
        raise ValueError(f"cannot activate adapters {list(adapter_names)}: the model has no LoRA layers")
    apply_stage_freezing(stage, models, train_text_encoder, base_trains_flow)


def trainable_parameter_names(models: StageModels) -> list[str]:
    """``"<model>.<parameter>"`` for every parameter with ``requires_grad`` (for logs and tests)."""
    return [
        f"{model_name}.{name}"
        for model_name, model in models.named_models()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    ]


def count_parameters(parameters: Iterable[nn.Parameter]) -> int:
    return sum(parameter.numel() for parameter in parameters)
