"""Training core: config round trips, orthogonal loss, stage freezing on a toy peft model, exact resume."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

from imageconductor.training.config import ConfigError, TrainingConfig, apply_overrides
from imageconductor.training.losses import diffusion_loss, lora_factor_pairs, orthogonal_loss
from imageconductor.training.stages import (
    StageModels,
    activate_adapters,
    adapter_of_parameter,
    apply_stage_freezing,
    trainable_parameter_names,
)
from imageconductor.training.trainer import Trainer, TrainingTask, batch_seed, find_latest_checkpoint

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")

# ---- helpers -----------------------------------------------------------------------------------------


class ToyFlowNet(nn.Module):
    """A stand-in for the flow ControlNet: one linear and one conv layer carry LoRA, one does not."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 8)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.lin(x)).sum(dim=1) + self.conv(image).mean(dim=(1, 2, 3))


def toy_flow_net(rank: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = ToyFlowNet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("camera", "object"):
            config = LoraConfig(
                r=rank, lora_alpha=rank, target_modules=["lin", "conv"], init_lora_weights="gaussian"
            )
            net = inject_adapter_in_model(config, net, adapter_name=name)
    for module in net.modules():  # non-zero B so both factors receive gradients
        if isinstance(module, LoraLayer):
            for adapter in ("camera", "object"):
                nn.init.normal_(module.lora_B[adapter].weight, std=0.1)
    return net


def toy_models() -> StageModels:
    torch.manual_seed(1)
    return StageModels(
        unet=nn.Linear(4, 4),
        image_controlnet=nn.Linear(4, 4),
        flow_controlnet=toy_flow_net(),
        text_encoder=nn.Embedding(10, 4),
        vae=nn.Linear(4, 4),
    )


# ---- config --------------------------------------------------------------------------------------------


def test_config_yaml_and_json_round_trip(tmp_path):
    config = TrainingConfig.from_dict(
        {
            "stage": "object",
            "model": {"pretrained_model_path": "base", "camera_lora_path": "cam", "lora_rank": 8},
            "data": {"kinds": ["mixed"], "curriculum": {"dense_steps": 50, "sparse_max_tracks": 4}},
            "optim": {"learning_rate": "1e-4"},
            "loss": {"ortho_weight": 0.5, "ortho_form": "identity"},
        }
    )
    assert config.optim.learning_rate == pytest.approx(1e-4)
    for name in ("cfg.yaml", "cfg.json"):
        config.save(tmp_path / name)
        loaded = TrainingConfig.load(tmp_path / name)
        assert loaded == config
    assert json.loads((tmp_path / "cfg.json").read_text())["data"]["curriculum"]["dense_steps"] == 50


def test_config_overrides_and_errors(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("stage: camera\nmodel: {pretrained_model_path: base}\nmax_steps: 100\n")
    config = TrainingConfig.load(path, ["max_steps=7", "optim.learning_rate=0.5", "data.kinds=[camera]"])
    assert (config.max_steps, config.optim.learning_rate, config.data.kinds) == (7, 0.5, ["camera"])
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}
    with pytest.raises(ConfigError, match="unknown key.*'max_stepz'"):
        TrainingConfig.from_dict({"stage": "base", "max_stepz": 3})
    with pytest.raises(ConfigError, match="stage must be one of"):
        TrainingConfig.from_dict({"stage": "lora"})
    with pytest.raises(ConfigError, match="pretrained_model_path"):
        TrainingConfig.from_dict({"stage": "controlnet"})
    with pytest.raises(ConfigError, match="data.height"):
        TrainingConfig.from_dict({"stage": "base", "data": {"height": 100}})
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        TrainingConfig.from_dict({"stage": "base", "batch_size": "two"})
    with pytest.raises(ConfigError, match="sparse_min_tracks"):
        TrainingConfig.from_dict({"stage": "base", "data": {"curriculum": {"sparse_min_tracks": 9}}})
    with pytest.raises(ConfigError, match="not found"):
        TrainingConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="flow_dropout must lie in"):
        TrainingConfig.from_dict({"stage": "base", "data": {"flow_dropout": 1.5}})
    with pytest.raises(ConfigError, match="flow_dropout only applies"):
        TrainingConfig.from_dict({"stage": "base", "data": {"flow_dropout": 0.2}})
    joint = {
        "stage": "base",
        "data": {"flow_dropout": 0.2},
        "model": {"base": {"train_flow_controlnet": True}},
    }
    assert TrainingConfig.from_dict(joint).data.flow_dropout == 0.2
    with pytest.raises(ConfigError, match="prediction_type"):
        TrainingConfig.from_dict({"stage": "base", "model": {"base": {"prediction_type": "sample"}}})
    with pytest.raises(ConfigError, match="model.flow_encoding: kernel normalization"):
        TrainingConfig.from_dict(
            {"stage": "base", "model": {"flow_encoding": {"kernel_normalization": "max"}}}
        )
    auto = TrainingConfig.from_dict({"stage": "base", "model": {"flow_encoding": {"blur_sigma": "auto"}}})
    assert auto.model.flow_encoding.blur_sigma == "auto"
    with pytest.raises(ConfigError, match="blur_sigma is 'wide'"):
        TrainingConfig.from_dict({"stage": "base", "model": {"flow_encoding": {"blur_sigma": "wide"}}})
    encoded = TrainingConfig.from_dict({"stage": "base", "model": {"flow_encoding": {"blur_sigma": 2}}})
    assert encoded.model.flow_encoding.as_kwargs() == {
        "blur_sigma": 2.0,
        "kernel_size": 99,
        "kernel_normalization": "sum",
    }


def test_base_scheduler_parametrisation():
    """Released DDIM by default; v-prediction with zero terminal SNR when asked (last step pure noise)."""
    from imageconductor.training.base_model import base_scheduler, released_scheduler
    from imageconductor.training.config import BaseModelConfig

    default = base_scheduler(BaseModelConfig())
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(default.config) == public(released_scheduler().config)
    assert default.alphas_cumprod[-1] > 1e-3
    zero_snr = base_scheduler(BaseModelConfig(prediction_type="v_prediction", zero_terminal_snr=True))
    assert zero_snr.config.prediction_type == "v_prediction"
    assert float(zero_snr.alphas_cumprod[-1]) < 1e-6
    torch.testing.assert_close(zero_snr.alphas_cumprod[0], default.alphas_cumprod[0], rtol=1e-3, atol=0)
    zero_snr.set_timesteps(25)
    assert int(zero_snr.timesteps[0]) == 999  # sampling starts from pure noise


# ---- losses ---------------------------------------------------------------------------------------------


def test_diffusion_loss_is_mean_squared_error():
    a, b = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    assert diffusion_loss(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        diffusion_loss(a, b[:1])


def _direct_orthogonal(net: nn.Module, form: str, factor: str) -> float:
    values = []
    for layer in (net.lin, net.conv):
        weights = []
        for adapter in ("camera", "object"):
            w = getattr(layer, factor)[adapter].weight.detach().double()
            w = w.flatten(1) if factor == "lora_A" else w.flatten(1).T
            weights.append(w)
        cam, obj = weights
        if form == "cross":
            cam = cam / cam.norm(dim=1, keepdim=True)
            obj = obj / obj.norm(dim=1, keepdim=True)
            values.append(float(((cam @ obj.T) ** 2).sum()))
        elif form == "identity":
            values.append(float(((torch.eye(cam.shape[0], dtype=cam.dtype) - cam @ obj.T) ** 2).sum()))
        else:
            stacked = torch.cat([cam, obj])
            eye = torch.eye(stacked.shape[0], dtype=cam.dtype)
            values.append(float(((eye - stacked @ stacked.T) ** 2).sum()))
    return sum(values) / len(values)


@pytest.mark.parametrize("form", ["cross", "identity", "stacked"])
@pytest.mark.parametrize("factor", ["lora_A", "lora_B"])
def test_orthogonal_loss_matches_direct_computation(form, factor):
    net = toy_flow_net()
    value = orthogonal_loss(net, form=form, factor=factor)
    assert value.item() == pytest.approx(_direct_orthogonal(net, form, factor), rel=1e-5)
    assert value.item() > 0


def test_orthogonal_loss_gradient_reaches_only_the_object_factor():
    net = toy_flow_net()
    for parameter in net.parameters():  # even with every LoRA weight trainable, camera gets nothing
        parameter.requires_grad_(True)
    orthogonal_loss(net, form="cross", factor="lora_A").backward()
    for name, parameter in net.named_parameters():
        if ".lora_A.object." in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None or not parameter.grad.any(), name


def test_cross_orthogonal_loss_is_zero_for_orthogonal_subspaces_and_scale_free():
    net = toy_flow_net(rank=3)
    with torch.no_grad():
        for _, cam, obj in lora_factor_pairs(net, factor="lora_A"):
            basis = torch.linalg.qr(torch.randn(cam.shape[1], cam.shape[1]))[0].T
            cam.copy_(basis[: cam.shape[0]])
            obj.copy_(3.0 * basis[cam.shape[0] : 2 * cam.shape[0]])
    assert orthogonal_loss(net, form="cross").item() == pytest.approx(0.0, abs=1e-10)
    # the paper-literal form is rank (identity target), the stacked form counts the object rows' norms
    assert orthogonal_loss(net, form="identity").item() == pytest.approx(3.0, rel=1e-5)
    assert orthogonal_loss(net, form="stacked").item() == pytest.approx(3 * (9 - 1) ** 2, rel=1e-4)
    with pytest.raises(ValueError, match="no LoRA layer carries both"):
        orthogonal_loss(net, object_adapter="objekt")


# ---- stages ---------------------------------------------------------------------------------------------


def test_adapter_of_parameter():
    assert adapter_of_parameter("down.0.to_q.lora_A.camera.weight") == "camera"
    assert adapter_of_parameter("down.0.to_q.lora_B.object.weight") == "object"
    assert adapter_of_parameter("down.0.to_q.base_layer.weight") is None
    assert adapter_of_parameter("conv_in.weight") is None


def test_stage_freezing_rules():
    models = toy_models()
    apply_stage_freezing("base", models)
    names = trainable_parameter_names(models)
    assert {n.split(".")[0] for n in names} == {"unet", "image_controlnet", "text_encoder"}
    apply_stage_freezing("base", models, train_text_encoder=False)
    assert not any(n.startswith("text_encoder") for n in trainable_parameter_names(models))
    apply_stage_freezing("base", models, base_trains_flow=True)
    names = trainable_parameter_names(models)
    assert {n.split(".")[0] for n in names} == {"unet", "image_controlnet", "text_encoder", "flow_controlnet"}
    assert "flow_controlnet.lin.base_layer.weight" in names and not any("lora_" in n for n in names)

    apply_stage_freezing("controlnet", models)
    names = trainable_parameter_names(models)
    assert names and all(n.startswith("flow_controlnet.") and "lora_" not in n for n in names)
    assert "flow_controlnet.lin.base_layer.weight" in names and "flow_controlnet.head.weight" in names

    for stage in ("camera", "object"):
        apply_stage_freezing(stage, models)
        names = trainable_parameter_names(models)
        assert len(names) == 4 and all(f".{stage}." in n for n in names), names

    with pytest.raises(ValueError, match="no trainable parameters.*'object'"):
        apply_stage_freezing("object", StageModels(flow_controlnet=nn.Linear(2, 2)))


def test_activate_adapters_refreezes_what_peft_unfreezes():
    models = toy_models()
    flow = models.flow_controlnet
    apply_stage_freezing("object", models)
    # the trap: peft's own set_adapter turns gradients on for every adapter it activates
    flow.lin.set_adapter(["camera", "object"])
    assert flow.lin.lora_A["camera"].weight.requires_grad
    activate_adapters(flow, ["camera", "object"], "object", models)
    assert all(layer.active_adapters == ["camera", "object"] for layer in (flow.lin, flow.conv))
    assert not flow.lin.lora_A["camera"].weight.requires_grad
    assert flow.lin.lora_A["object"].weight.requires_grad
    activate_adapters(flow, [], "controlnet", models)
    assert flow.lin.disable_adapters and flow.lin.base_layer.weight.requires_grad
    with pytest.raises(ValueError, match="not found"):
        activate_adapters(flow, ["camera", "objekt"], "object", models)


def test_object_training_keeps_camera_lora_bit_identical():
    models = toy_models()
    flow = models.flow_controlnet
    activate_adapters(flow, ["camera", "object"], "object", models)
    before = {n: p.detach().clone() for n, p in flow.named_parameters()}
    trainable = apply_stage_freezing("object", models)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.1)
    # both adapters act in the forward pass: the output differs from camera-only
    x, image = torch.randn(3, 6), torch.randn(3, 3, 4, 4)
    with torch.no_grad():
        both = flow(x, image)
        activate_adapters(flow, ["camera"], "object", models)
        camera_only = flow(x, image)
        activate_adapters(flow, ["camera", "object"], "object", models)
    assert not torch.allclose(both, camera_only)
    for _ in range(3):
        loss = flow(x, image).pow(2).mean() + 0.5 * orthogonal_loss(flow)
        loss.backward()
        for name, parameter in flow.named_parameters():
            if ".object." not in name:
                assert parameter.grad is None, name
        optimizer.step()
        optimizer.zero_grad()
    for name, parameter in flow.named_parameters():
        if ".object." in name:
            assert not torch.equal(parameter, before[name]), name
        else:
            assert torch.equal(parameter, before[name]), name


# ---- trainer: exact resume on a toy task ------------------------------------------------------------------


class ToyPairs(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        return {"x": torch.randn(4, generator=generator), "y": torch.randn(2, generator=generator)}


class ToyTask(TrainingTask):
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 8), nn.Linear(8, 2))
        self.net[2].requires_grad_(False)  # a frozen layer in the middle

    def networks(self):
        return {"net": self.net}

    def trainable_parameters(self):
        return [p for p in self.net.parameters() if p.requires_grad]

    def use_prepared(self, prepared, accelerator):
        self.net = prepared["net"]

    def compute_losses(self, batch, seed):
        noise = torch.randn(batch["x"].shape, generator=torch.Generator().manual_seed(seed))
        return {"loss": (self.net(batch["x"] + 0.1 * noise) - batch["y"]).pow(2).mean()}


def _toy_run(output_dir, until=None, resume=False, accumulation=1):
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    config = TrainingConfig.from_dict(
        {
            "stage": "base",
            "output_dir": str(output_dir),
            "max_steps": 8,
            "batch_size": 3,
            "checkpoint_every": 2,
            "log_every": 1,
            "gradient_accumulation_steps": accumulation,
            "optim": {"lr_scheduler": "cosine", "warmup_steps": 2, "learning_rate": 0.01},
        }
    )
    task = ToyTask()
    trainer = Trainer(config, task, ToyPairs())
    if resume:
        torch.manual_seed(12345)  # a fresh process would start from another RNG state
        trainer.load_checkpoint(find_latest_checkpoint(output_dir))
    history = trainer.train(until)
    return history, [p.detach().clone() for p in task.net.parameters()], trainer


@pytest.mark.parametrize("accumulation", [1, 2])
def test_toy_resume_is_exact(tmp_path, accumulation):
    straight, straight_params, _ = _toy_run(tmp_path / "a", accumulation=accumulation)
    first, _, interrupted = _toy_run(tmp_path / "b", until=4, accumulation=accumulation)
    assert find_latest_checkpoint(tmp_path / "b").name == "checkpoint-00000004"
    second, resumed_params, resumed = _toy_run(tmp_path / "b", resume=True, accumulation=accumulation)
    # the first run's loop time (up to its checkpoint) reaches the resumed run, which adds its own
    assert 0 < resumed.earlier_loop_seconds <= interrupted.progress.loop_seconds
    assert resumed.progress.loop_seconds > resumed.earlier_loop_seconds
    assert [h["loss"] for h in straight] == [h["loss"] for h in first + second]
    assert [h["lr"] for h in straight] == [h["lr"] for h in first + second]
    for a, b in zip(straight_params, resumed_params, strict=True):
        assert torch.equal(a, b)
    # the JSONL log of the resumed run continues where the first half stopped
    logged = [
        json.loads(line)["step"]
        for line in (tmp_path / "b" / "logs" / "train.jsonl").read_text().splitlines()
    ]
    assert logged == list(range(1, 9))
    # only the newest `keep_checkpoints` survive, and they hold the trained parameters only
    kept = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert kept == ["checkpoint-00000006", "checkpoint-00000008"]
    stored = load_file(tmp_path / "b" / "checkpoints" / kept[-1] / "model.safetensors")
    assert sorted(stored) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    assert torch.equal(straight_params[2], resumed_params[2])  # the frozen layer never moved


def test_batch_seed_differs_per_position():
    seeds = {batch_seed(0, e, b, p) for e in range(3) for b in range(5) for p in range(2)}
    assert len(seeds) == 30
    assert batch_seed(0, 1, 2, 0) == batch_seed(0, 1, 2, 0)


def test_curriculum_switches_from_dense_to_sparse_tracks():
    from imageconductor.training.conditions import curriculum_flow_condition, normalize_batch
    from imageconductor.training.config import CurriculumConfig
    from imageconductor.trajectories import FlowEncoding, flow_condition_from_dense

    frames, height, width = 4, 32, 48
    tracks = torch.zeros(1, frames, 3, 2)
    tracks[0, :, :, 0] = torch.tensor([8.0, 24.0, 40.0])
    tracks[0, :, :, 1] = 16.0
    tracks[0, :, 1, 0] += torch.arange(frames) * 2.0  # only track 1 moves
    tracks[0, :, 2, 1] += torch.arange(frames) * 1.0  # track 2 moves too, slower
    batch = normalize_batch(
        {"pixel_values": torch.zeros(1, frames, 3, height, width), "captions": ["x"], "tracks": [tracks[0]]}
    )
    assert batch.frames.shape == (1, 3, frames, height, width) and batch.captions == ["x"]
    curriculum = CurriculumConfig(dense_steps=3, sparse_min_tracks=1, sparse_max_tracks=1)
    dense = curriculum_flow_condition(batch, step=2, seed=0, curriculum=curriculum)
    assert torch.allclose(dense[0], flow_condition_from_dense(tracks[0].numpy(), height, width)[0].float())
    picked = set()
    for seed in range(12):
        sparse = curriculum_flow_condition(batch, step=3, seed=seed, curriculum=curriculum)[0]
        matches = [
            index
            for index in (0, 1, 2)
            if torch.allclose(
                sparse, flow_condition_from_dense(tracks[0, :, [index]].numpy(), height, width)[0].float()
            )
        ]
        assert len(matches) == 1
        picked.update(matches)
    assert picked == {1, 2}  # one moving track at a time, never the static one
    # A model trained with another flow encoding gets its conditions blurred that way, dense and sparse.
    encoding = FlowEncoding(blur_sigma=2.0, kernel_size=11, kernel_normalization="peak")
    dense = curriculum_flow_condition(batch, step=2, seed=0, curriculum=curriculum, encoding=encoding)
    expected = flow_condition_from_dense(tracks[0].numpy(), height, width, **encoding.as_kwargs())
    torch.testing.assert_close(dense[0], expected[0].float())
    peaks = {
        round(curriculum_flow_condition(batch, 3, seed, curriculum, encoding).abs().amax().item(), 4)
        for seed in range(12)
    }
    assert peaks == {1.0, 2.0}  # one track's steps (1 or 2 px) at full height, not 1/(2πσ²) of them
