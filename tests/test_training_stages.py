"""Few-step smoke training of every stage on a tiny model and tiny synthetic clips, exact resume in a
fresh process, and LoRA adapters saved as safetensors that load back to the same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState, GradientState

from imageconductor.models import predict_noise
from imageconductor.models.lora import ADAPTER_WEIGHT_NAME, adapter_names
from imageconductor.pipelines import VideoSize, read_model_index, synthetic_world
from imageconductor.training.base_model import build_base_components, load_components, save_components
from imageconductor.training.config import ConfigError, TrainingConfig
from imageconductor.training.diffusion_task import DiffusionTrainingTask
from imageconductor.training.run import build_dataset, build_task, run_training
from imageconductor.training.stages import StageModels
from imageconductor.training.trainer import Trainer, find_latest_checkpoint
from imageconductor.trajectories import FlowEncoding

pytestmark = pytest.mark.usefixtures("single_torch_thread", "fresh_accelerate_state")

TINY_MODEL = {
    "block_out_channels": [16, 32],
    "norm_num_groups": 8,
    "attention_head_dim": 8,
    "cross_attention_dim": 32,
    "text_hidden_size": 32,
    "text_layers": 1,
    "text_heads": 2,
    "vae_block_out_channels": [8, 8, 8, 8],
    "motion_num_attention_heads": 2,
}
TINY_DATA = {"num_frames": 4, "height": 48, "width": 64, "num_clips": 6, "grid_size": 4}
CAPTIONS = ["a red star moves right, camera pans up", "a blue circle zig-zags down, static camera", ""]


def stage_config(stage: str, output_dir: Path, model_dir: Path | None, **overrides) -> TrainingConfig:
    data = {**TINY_DATA, **overrides.pop("data", {})}
    config = {
        "stage": stage,
        "output_dir": str(output_dir),
        "seed": 3,
        "max_steps": 2,
        "batch_size": 2,
        "checkpoint_every": 0,
        "log_every": 1,
        "data": data,
        "model": {
            "base": TINY_MODEL,
            "lora_rank": 4,
            "pretrained_model_path": str(model_dir) if model_dir else None,
        },
        "optim": {"learning_rate": 1e-3, "lr_scheduler": "constant"},
        **overrides,
    }
    return TrainingConfig.from_dict(config)


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny model folder (stage 0 is exercised separately, briefly)."""
    from imageconductor.training.config import BaseModelConfig

    components = build_base_components(BaseModelConfig(**TINY_MODEL), seed=0, captions=CAPTIONS)
    return save_components(components, tmp_path_factory.mktemp("tiny-base") / "model")


@pytest.fixture(scope="module")
def camera_model_dir(base_model_dir, tmp_path_factory) -> Path:
    """The tiny model after a 2-step camera stage (a flow ControlNet with a trained camera LoRA)."""
    output = tmp_path_factory.mktemp("camera-run")
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    result = run_training(stage_config("camera", output, base_model_dir))
    return result.final_dir


def _snapshot(models: StageModels) -> dict[str, torch.Tensor]:
    return {
        f"{model_name}.{name}": parameter.detach().clone()
        for model_name, model in models.named_models()
        for name, parameter in model.named_parameters()
    }


def _train_in_memory(config: TrainingConfig):
    components = load_components(config.model.pretrained_model_path)
    task = build_task(config, components)
    before = _snapshot(task.models)
    trainable = set(task.trainable_names())
    dataset, collate_fn = build_dataset(config)
    history = Trainer(config, task, dataset, collate_fn=collate_fn).train()
    after = _snapshot(task.models)
    return task, history, before, after, trainable


def _perturb_flow_controlnet(components) -> None:
    """Seeded noise on every flow ControlNet weight: a fresh one's zero convolutions would hide its residuals."""
    with torch.no_grad():
        for index, parameter in enumerate(components.flow_controlnet.parameters()):
            parameter.add_(
                torch.randn(parameter.shape, generator=torch.Generator().manual_seed(index)) * 0.05
            )


def _tiny_latents(pipe, image: torch.Tensor, tracks: list) -> torch.Tensor:
    """Two seeded DDIM steps of a base model (no LoRA) at 4 frames of 64x48, as latents."""
    return pipe(
        prompt="a red star moves right",
        image=image,
        trajectories=tracks,
        mode="none",
        num_frames=4,
        height=48,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).frames


def _expected_trainable(stage: str, name: str) -> bool:
    model, _, rest = name.partition(".")
    if stage == "base":
        return model in ("unet", "image_controlnet", "text_encoder")
    if stage == "controlnet":
        return model == "flow_controlnet" and ".lora_" not in rest
    return model == "flow_controlnet" and f".{stage}." in rest and ".lora_" in rest


@pytest.mark.parametrize("stage", ["base", "controlnet", "camera", "object"])
def test_stage_smoke_training(stage, base_model_dir, camera_model_dir, tmp_path):
    model_dir = camera_model_dir if stage == "object" else base_model_dir
    extra = {"sample_every": 2, "sample": {"num_inference_steps": 1}} if stage == "object" else {}
    config = stage_config(stage, tmp_path / stage, model_dir, **extra)
    task, history, before, after, trainable = _train_in_memory(config)

    assert len(history) == 2
    for record in history:
        assert torch.isfinite(torch.tensor(record["loss"])) and record["loss"] > 0
    assert trainable, "the stage trains nothing"
    assert all(_expected_trainable(stage, name) for name in trainable), sorted(trainable)[:5]
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    frozen_changed = changed - trainable
    assert not frozen_changed, sorted(frozen_changed)[:5]
    # every trained tensor moved (AdamW decays even those whose first gradient is zero, e.g. LoRA A with B=0)
    unchanged = trainable - changed
    assert len(unchanged) <= 0.05 * len(trainable), sorted(unchanged)[:5]
    if stage == "object":
        camera = [name for name in before if ".camera." in name]
        assert camera and all(torch.equal(before[name], after[name]) for name in camera)
        assert "ortho" in history[0] and history[0]["ortho"] > 0
        assert history[0]["loss"] == pytest.approx(
            history[0]["diffusion"] + 0.1 * history[0]["ortho"], rel=1e-5
        )
        # a sample video was written at step 2 with the object adapter
        from imageconductor.video_io import read_video

        frames, _ = read_video(tmp_path / stage / "samples" / "step-00000002" / "sample-00.mp4")
        assert frames.shape == (4, 48, 64, 3)


def test_vae_stage_smoke_and_scaling_factor(base_model_dir, tmp_path):
    config = stage_config("vae", tmp_path / "vae", base_model_dir, max_steps=3)
    result = run_training(config)
    losses = [record["loss"] for record in result.history]
    assert all(torch.isfinite(torch.tensor(loss)) for loss in losses)
    reloaded = load_components(result.final_dir)
    untouched = load_components(base_model_dir)
    assert not torch.equal(reloaded.vae.encoder.conv_in.weight, untouched.vae.encoder.conv_in.weight)
    assert torch.equal(reloaded.unet.conv_in.weight, untouched.unet.conv_in.weight)
    # the calibrated factor makes the scaled latents of the calibration clips unit-variance
    task = build_task(config, reloaded)
    assert reloaded.vae.config.scaling_factor == pytest.approx(task.calibrated_scaling_factor(), rel=1e-4)
    assert reloaded.vae.config.scaling_factor != pytest.approx(0.18215)


def test_object_stage_gradients_reach_only_the_object_lora(camera_model_dir, tmp_path):
    from imageconductor.training.losses import orthogonal_loss

    config = stage_config("object", tmp_path / "object", camera_model_dir)
    components = load_components(camera_model_dir)
    task = DiffusionTrainingTask(config, components)
    task.wrapped_denoiser = task.denoiser
    dataset, _ = build_dataset(config)
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    terms = task.compute_losses(batch, seed=11)
    terms["loss"].backward()
    flow = components.flow_controlnet
    for name, parameter in flow.named_parameters():
        if ".lora_" in name and ".object." in name:
            assert parameter.grad is not None, name
        else:
            assert parameter.grad is None, name
    for model in (components.unet, components.image_controlnet, components.text_encoder, components.vae):
        assert all(p.grad is None for p in model.parameters())
    assert set(adapter_names(flow)) == {"camera", "object"}
    # the orthogonal term equals a direct computation over the real LoRA layers (cross form, lora_A)
    direct = []
    for module in flow.modules():
        if hasattr(module, "lora_A") and "camera" in module.lora_A and "object" in module.lora_A:
            cam = module.lora_A["camera"].weight.detach().double().flatten(1)
            obj = module.lora_A["object"].weight.detach().double().flatten(1)
            cam = cam / cam.norm(dim=1, keepdim=True)
            obj = obj / obj.norm(dim=1, keepdim=True)
            direct.append(float(((cam @ obj.T) ** 2).sum()))
    assert len(direct) > 20
    assert terms["ortho"].item() == pytest.approx(sum(direct) / len(direct), rel=1e-5)
    assert orthogonal_loss(flow).item() == pytest.approx(terms["ortho"].item(), rel=1e-6)


@pytest.mark.parametrize("stage", ["controlnet", "camera", "object"])
def test_training_forward_equals_predict_noise(stage, camera_model_dir):
    """The training forward is the inference computation, with the stage's adapters (object: Eq. 2)."""
    from imageconductor.training.diffusion_task import STAGE_ADAPTER_CHOICE

    components = load_components(camera_model_dir)
    task = DiffusionTrainingTask(stage_config(stage, Path("unused"), camera_model_dir), components)
    with torch.no_grad():  # give every adapter a non-zero effect
        for name, parameter in components.flow_controlnet.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    generator = torch.Generator().manual_seed(2)
    sample = torch.randn(2, 4, 4, 6, 8, generator=generator)
    timesteps = torch.tensor([10, 700])
    ids = task.tokenize(["a red star moves right", ""])
    image = torch.randn(2, 5, 4, 6, 8, generator=generator)
    flow = torch.randn(2, 2, 4, 48, 64, generator=generator) * 0.01
    with torch.no_grad():
        ours = task.denoiser(sample, timesteps, ids, image, flow)
        text = components.text_encoder(ids)[0]
        reference = predict_noise(
            components.unet,
            components.image_controlnet,
            components.flow_controlnet,
            sample,
            timesteps,
            text,
            image,
            flow,
            STAGE_ADAPTER_CHOICE[stage],
        )
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)


def test_object_forward_uses_both_adapters(camera_model_dir):
    components = load_components(camera_model_dir)
    config = stage_config("object", Path("unused"), camera_model_dir)
    task = DiffusionTrainingTask(config, components)
    with torch.no_grad():  # a trained-looking object LoRA: non-zero B
        for name, parameter in components.flow_controlnet.named_parameters():
            if ".lora_B.object." in name:
                parameter.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 4, 6, 8, generator=generator)
    text = components.text_encoder(task.tokenize(["a red star moves right"]))[0]
    image = torch.randn(1, 5, 4, 6, 8, generator=generator)
    flow = torch.randn(1, 2, 4, 48, 64, generator=generator) * 0.01
    outputs = {}
    for label, adapters in {
        "both": {"camera": 1.0, "object": 1.0},
        "camera": "camera",
        "object": "object",
    }.items():
        with torch.no_grad():
            outputs[label] = predict_noise(
                components.unet,
                components.image_controlnet,
                components.flow_controlnet,
                sample,
                500,
                text,
                image,
                flow,
                adapters,
            )
    assert not torch.allclose(outputs["both"], outputs["camera"])
    assert not torch.allclose(outputs["both"], outputs["object"])


def test_saved_lora_adapter_is_safetensors_and_loads_back(camera_model_dir, base_model_dir):
    adapter_file = camera_model_dir / "flow_controlnet" / "adapters" / "camera" / ADAPTER_WEIGHT_NAME
    assert adapter_file.is_file()
    from safetensors.torch import load_file

    weights = load_file(adapter_file)
    assert weights and all(".lora_A." in key or ".lora_B." in key for key in weights)
    assert any(value.abs().sum() > 0 for key, value in weights.items() if ".lora_B." in key)

    trained = load_components(camera_model_dir)
    # the same adapter loaded by file into the untrained flow ControlNet of the base model
    config = stage_config(
        "object",
        Path("unused"),
        base_model_dir,
        model={
            "pretrained_model_path": str(base_model_dir),
            "base": TINY_MODEL,
            "lora_rank": 4,
            "camera_lora_path": str(adapter_file.parent),
        },
    )
    base = load_components(base_model_dir)
    from imageconductor.training.diffusion_task import prepare_stage_adapters

    prepare_stage_adapters(base, config)
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(1, 4, 4, 6, 8, generator=generator)
    text = torch.randn(1, 77, 32, generator=generator)
    image = torch.randn(1, 5, 4, 6, 8, generator=generator)
    flow = torch.randn(1, 2, 4, 48, 64, generator=generator) * 0.01
    with torch.no_grad():
        expected = predict_noise(
            trained.unet,
            trained.image_controlnet,
            trained.flow_controlnet,
            sample,
            300,
            text,
            image,
            flow,
            "camera",
        )
        loaded = predict_noise(
            base.unet, base.image_controlnet, base.flow_controlnet, sample, 300, text, image, flow, "camera"
        )
        no_lora = predict_noise(
            base.unet, base.image_controlnet, base.flow_controlnet, sample, 300, text, image, flow, "none"
        )
    assert torch.allclose(expected, loaded, atol=1e-6, rtol=0)
    assert not torch.allclose(loaded, no_lora, atol=1e-6)


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "imageconductor.cli", "train", "stage", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_resume_in_a_fresh_process_is_exact(camera_model_dir, tmp_path):
    """4 object-stage steps straight == 2 steps, checkpoint, a NEW process resuming for 2 more."""
    settings = {
        "max_steps": 4,
        "checkpoint_every": 2,
        "gradient_accumulation_steps": 1,
        "data": {"curriculum": {"dense_steps": 2}},  # the dense→sparse switch falls in the resumed half
        "optim": {"learning_rate": 1e-3, "lr_scheduler": "cosine", "warmup_steps": 1},
    }
    straight = run_training(stage_config("object", tmp_path / "straight", camera_model_dir, **settings))
    config = stage_config("object", tmp_path / "resumed", camera_model_dir, **settings)
    first = run_training(config, until_step=2)
    assert first.final_dir is None and find_latest_checkpoint(config.output_dir).name == "checkpoint-00000002"
    config_path = tmp_path / "object.yaml"
    config.save(config_path)
    completed = _cli(["--config", str(config_path), "--resume", "latest"])
    assert completed.returncode == 0, completed.stderr[-3000:]

    def logged(run_dir: Path) -> list[dict]:
        return [json.loads(line) for line in (run_dir / "logs" / "train.jsonl").read_text().splitlines()]

    straight_log, resumed_log = logged(tmp_path / "straight"), logged(tmp_path / "resumed")
    assert [entry["step"] for entry in resumed_log] == [1, 2, 3, 4]
    for a, b in zip(straight_log, resumed_log, strict=True):
        for key in ("loss", "diffusion", "ortho", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["step"], key)
    one, two = load_components(straight.final_dir), load_components(tmp_path / "resumed" / "final")
    state_one, state_two = one.flow_controlnet.state_dict(), two.flow_controlnet.state_dict()
    assert state_one.keys() == state_two.keys()
    for key in state_one:
        assert torch.allclose(state_one[key], state_two[key], atol=1e-6, rtol=0), key


def test_cli_rejects_bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"stage": "camera", "max_stepz": 3}))
    completed = _cli(["--config", str(path)])
    assert completed.returncode == 2
    assert "max_stepz" in completed.stderr


def test_make_default_smoke_plan_builds_a_loadable_model(tmp_path, monkeypatch):
    from imageconductor.training import make_default as md

    out = md.make_default(tmp_path / "model", md.SMOKE_PLAN, tmp_path / "work", steps_scale=0.5)
    index = json.loads((out / "model_index.json").read_text())
    assert index["native_size"] == {"num_frames": 4, "height": 48, "width": 64}
    assert index["synthetic_world"] == {"texture_scale": 1.0, "motion_scale": 1.0, "seed": 0}
    card = (out / "README.md").read_text()
    for stage in md.STAGE_ORDER:
        assert f"| {stage} | 1 | 2 |" in card
    assert "texture scale 1, motion scale vae 1, base 1, controlnet 1, camera 1, object 1" in card
    assert "flow condition: Gaussian sigma 1.5, 9x9, kernel normalised to peak 1" in card
    # no path of the build machine is shipped in the component configs
    assert str(tmp_path) not in "".join(f.read_text() for f in out.rglob("*.json"))
    components = load_components(out)
    assert set(adapter_names(components.flow_controlnet)) == {"camera", "object"}
    # the controlnet stage's flow encoding, kept by the LoRA stages that load its model
    assert components.flow_encoding == FlowEncoding(1.5, 9, "peak")
    assert load_components(tmp_path / "work" / "base" / "final").flow_encoding.is_official
    # the VAE was trained and calibrated, the rest chained through the stages
    assert components.vae.config.scaling_factor != pytest.approx(0.18215)
    # a rerun skips every finished stage
    monkeypatch.setattr("imageconductor.training.run.run_training", lambda *a, **k: pytest.fail("re-trained"))
    md.make_default(tmp_path / "model", md.SMOKE_PLAN, tmp_path / "work", steps_scale=0.5)
    # --until: the model of an earlier stage (the motion ControlNet before any LoRA)
    early = md.make_default(
        tmp_path / "early", md.SMOKE_PLAN, tmp_path / "work", steps_scale=0.5, until="controlnet"
    )
    card = (early / "README.md").read_text()
    assert "| controlnet | 1 | 2 |" in card and "| camera |" not in card
    assert adapter_names(load_components(early).flow_controlnet) == []
    with pytest.raises(ValueError, match="until must be one of"):
        md.make_default(tmp_path / "x", md.SMOKE_PLAN, tmp_path / "work", until="lora")
    # measured metrics replace the card's placeholder section, and a second measurement replaces the first
    assert "Not measured yet" in card
    md.write_card_metrics(early, "| row | ObjMC |\n|---|---|\n| a | 1.00 |\n", "evaluate --first")
    md.write_card_metrics(early, "| row | ObjMC |\n|---|---|\n| b | 2.00 |\n", "evaluate --second")
    card = (early / "README.md").read_text()
    assert card.count("## Metrics") == 1 and "Not measured yet" not in card
    assert "| b | 2.00 |" in card and "`evaluate --second`" in card and "| a | 1.00 |" not in card
    assert "| controlnet | 1 | 2 |" in card  # the training table stays
    with pytest.raises(FileNotFoundError, match="no model card"):
        md.write_card_metrics(tmp_path / "x", "table", "cmd")


def test_default_plan_file_matches_the_built_in_plan():
    from imageconductor.training.make_default import DEFAULT_PLAN, stage_configs

    path = Path(__file__).resolve().parents[1] / "configs" / "default_model.yaml"
    assert yaml.safe_load(path.read_text()) == DEFAULT_PLAN
    configs = stage_configs(DEFAULT_PLAN, Path("work"))
    assert [c.stage for c in configs] == ["vae", "base", "controlnet", "camera", "object"]
    assert configs[2].model.pretrained_model_path == str(Path("work") / "base" / "final")
    assert configs[4].loss.ortho_weight == pytest.approx(0.1)


def test_controlnet_stage_trains_from_curated_shards(base_model_dir, tmp_path):
    """The curation shard loader's batches (pixel_values, captions, per-clip track lists) train a stage."""
    import numpy as np

    from imageconductor.curation.shards import Sample, write_shard
    from imageconductor.training.synthetic_data import SyntheticClipDataset
    from imageconductor.video_io import write_mp4

    clips = SyntheticClipDataset(2, 6, 48, 64, seed=5, grid_size=4)
    samples = []
    for index in range(2):
        item = clips[index]
        frames = (
            ((item["frames"].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        )
        video = write_mp4(frames, tmp_path / f"clip{index}.mp4", crf=0)
        samples.append(
            Sample(
                key=f"clip{index}",
                clip=video.read_bytes(),
                tracks=item["tracks"].numpy()[:, : 5 + index],  # different track counts per clip
                visibility=item["visibility"].numpy()[:, : 5 + index],
                metadata={"caption": item["caption"]},
            )
        )
    write_shard(tmp_path / "shards" / "shard-000000.tar", samples)
    config = stage_config(
        "controlnet",
        tmp_path / "run",
        base_model_dir,
        data={
            "source": "shards",
            "shards": [str(tmp_path / "shards" / "*.tar")],
            "curriculum": {"dense_steps": 1},
        },
    )
    result = run_training(config)
    assert len(result.history) == 2 and all(np.isfinite(r["loss"]) for r in result.history)
    # curated clips are not the synthetic world: the exported model keeps the released size as its default
    index = read_model_index(result.final_dir)
    assert index.get("native_size") is None and index.get("synthetic_world") is None


def test_a_stage_trained_on_the_synthetic_world_states_its_size_and_world(camera_model_dir):
    """An exported stage renders the size it trained at: a probe or an evaluation of a stage folder would
    otherwise generate the released 16x256x384 videos from a model that never saw them."""
    index = read_model_index(camera_model_dir)
    size = VideoSize.native(index)
    assert (size.num_frames, size.height, size.width) == (4, 48, 64)
    assert (size.num_frames, size.height, size.width) != (16, 256, 384)
    assert synthetic_world(index) == {"texture_scale": 1.0, "motion_scale": 1.0, "sprite_scale": 1.0}
    assert index["synthetic_world"]["seed"] == 3


def test_the_sprite_scale_is_stated_only_when_set_and_read_back():
    """Models built before ``sprite_scale`` existed keep their exact ``model_index.json``; a model trained on
    larger sprites says so, and its evaluation clips then draw them as large."""
    from imageconductor.training.config import DataConfig

    plain = DataConfig(texture_scale=3.0, motion_scale=2.0).synthetic_model_settings(seed=5)
    assert plain["synthetic_world"] == {"texture_scale": 3.0, "motion_scale": 2.0, "seed": 5}
    assert synthetic_world(plain)["sprite_scale"] == 1.0
    larger = DataConfig(texture_scale=3.0, motion_scale=2.0, sprite_scale=2.0).synthetic_model_settings(5)
    assert larger["synthetic_world"]["sprite_scale"] == 2.0
    assert synthetic_world(larger) == {"texture_scale": 3.0, "motion_scale": 2.0, "sprite_scale": 2.0}


def test_plan_overrides_set_nested_values_and_reject_bad_items(tmp_path, capsys):
    from imageconductor.cli import main
    from imageconductor.training.make_default import DEFAULT_PLAN, plan_with_overrides, stage_configs

    plan = plan_with_overrides(
        DEFAULT_PLAN, ["stages.object.loss.ortho_weight=0", "stages.controlnet.data.curriculum.dense_steps=0"]
    )
    configs = stage_configs(plan, tmp_path)
    assert configs[4].loss.ortho_weight == 0.0 and configs[2].data.curriculum.dense_steps == 0
    assert configs[3].max_steps == DEFAULT_PLAN["stages"]["camera"]["max_steps"]
    assert DEFAULT_PLAN["stages"]["object"]["loss"]["ortho_weight"] == pytest.approx(0.1)  # not modified
    # one stage's value changes that stage only, also where a plan shares one dict between stages
    shared = {"blur_sigma": 2.5}
    plan = {"stages": {"base": {"flow_encoding": shared}, "controlnet": {"flow_encoding": shared}}}
    wider = plan_with_overrides(plan, ["stages.controlnet.flow_encoding.blur_sigma=6"])["stages"]
    assert wider["controlnet"]["flow_encoding"]["blur_sigma"] == 6
    assert wider["base"]["flow_encoding"]["blur_sigma"] == 2.5 and shared["blur_sigma"] == 2.5
    for bad in ("stages.object.loss.ortho_weight", "seed.x=1", "=3"):
        with pytest.raises(ValueError, match="override"):
            plan_with_overrides(DEFAULT_PLAN, [bad])
    # the CLI checks overrides before any training (unknown keys name themselves)
    assert (
        main(["train", "default", "--out", str(tmp_path / "m"), "--set", "stages.object.loss.ortho_wieght=0"])
        == 2
    )
    assert "ortho_wieght" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_card_names_the_final_flow_encoding_and_the_stages_that_trained_with_another(tmp_path):
    from imageconductor.training.make_default import (
        DEFAULT_PLAN,
        _encoding_line,
        plan_with_overrides,
        stage_configs,
    )

    # the plan's own stages share one encoding: nothing to name
    assert "trained with" not in _encoding_line(stage_configs(DEFAULT_PLAN, tmp_path))
    overrides = [
        "stages.controlnet.model.flow_encoding.blur_sigma=6.0",
        "stages.controlnet.model.flow_encoding.kernel_size=37",
    ]
    line = _encoding_line(stage_configs(plan_with_overrides(DEFAULT_PLAN, overrides), tmp_path))
    base = DEFAULT_PLAN["stages"]["base"]["model"]["flow_encoding"]
    assert line.startswith("Gaussian sigma 6.0, 37x37, kernel normalised to peak 1")
    assert line.endswith(
        f"; stage base trained with sigma {base['blur_sigma']}, {base['kernel_size']}x{base['kernel_size']}"
    )
    assert "stage controlnet" not in line
    # a stage whose encoding differs only in the kernel's normalisation is named with it
    line = _encoding_line(
        stage_configs(
            plan_with_overrides(DEFAULT_PLAN, ["stages.base.model.flow_encoding.kernel_normalization=sum"]),
            tmp_path,
        )
    )
    assert line.endswith(
        f"; stage base trained with sigma {base['blur_sigma']}, {base['kernel_size']}x{base['kernel_size']}, "
        "kernel normalised to sum 1"
    )


def test_vae_norm_groups_setting_reaches_every_group_norm():
    from imageconductor.training.base_model import build_vae
    from imageconductor.training.config import BaseModelConfig

    def groups(vae):
        return {m.num_groups for m in vae.modules() if isinstance(m, torch.nn.GroupNorm)}

    assert groups(build_vae(BaseModelConfig(vae_block_out_channels=[16, 32, 64, 64]))) == {16}
    one = build_vae(BaseModelConfig(vae_block_out_channels=[16, 32, 64, 64], vae_norm_num_groups=1))
    assert groups(one) == {1}
    for bad in (0, 3):
        with pytest.raises(ValueError, match="vae_norm_num_groups"):
            build_vae(BaseModelConfig(vae_block_out_channels=[16, 32, 64, 64], vae_norm_num_groups=bad))


def test_make_default_refuses_a_stage_folder_run_with_other_settings(tmp_path, monkeypatch):
    import shutil

    from imageconductor.training import make_default as md
    from imageconductor.training.config import SAVED_CONFIG_FILE

    vae, base = md.stage_configs(md.SMOKE_PLAN, tmp_path / "work")[:2]
    for config in (vae, base):  # as if both had started
        config.save(Path(config.output_dir) / SAVED_CONFIG_FILE)
    md.check_earlier_settings(base)  # same settings: resumable
    # the same run symlinked or copied into another work dir (ablations reuse stages) still matches
    moved = md.stage_configs(md.SMOKE_PLAN, tmp_path / "ablation")[1]
    shutil.copytree(base.output_dir, moved.output_dir)
    md.check_earlier_settings(moved)

    faster = md.plan_with_overrides(md.SMOKE_PLAN, ["stages.base.data.motion_scale=2"])
    monkeypatch.setattr("imageconductor.training.run.run_training", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=r"stage 'base' .*data\.motion_scale: 1\.0 -> 2\.0"):
        md.make_default(tmp_path / "model", faster, tmp_path / "work")
    assert not (tmp_path / "model").exists()


def test_vae_sprite_weight_counts_sprite_pixels_more(base_model_dir, tmp_path):
    import types

    weight = 4.0
    config = stage_config("vae", tmp_path / "vae", base_model_dir, loss={"vae_sprite_weight": weight})
    dataset, _ = build_dataset(config)
    item = dataset[0]
    frames, height, width = item["frames"].shape[1:]
    assert item["sprite_mask"].shape == (frames, height, width) and item["sprite_mask"].dtype == torch.bool
    assert 0 < item["sprite_mask"].float().mean() < 0.5
    plain_config = stage_config("vae", tmp_path / "plain", base_model_dir)
    assert "sprite_mask" not in build_dataset(plain_config)[0][0]

    # A reconstruction that is off by 0.5 on the left half of every frame; "sprites" on its left quarter,
    # so the weighted error (0.1875) differs from the plain mean (0.125).
    task = build_task(config, load_components(base_model_dir))
    left = torch.zeros(height, width, dtype=torch.bool)
    left[:, : width // 2] = True
    sprites = torch.zeros(height, width, dtype=torch.bool)
    sprites[:, : width // 4] = True
    task.use_prepared(
        {"vae": lambda images, seed: (images + 0.5 * left.to(images), torch.zeros(()))},
        types.SimpleNamespace(device=torch.device("cpu")),
    )
    batch = {
        "frames": torch.zeros(2, 3, frames, height, width),
        "caption": ["", ""],
        "sprite_mask": sprites.expand(2, frames, height, width),
    }
    both, only_left = (left & sprites).sum().item(), (left & ~sprites).sum().item()
    expected = 0.25 * (only_left + (1 + weight) * both) / (height * width + weight * sprites.sum().item())
    assert expected > 0.25 * 0.5 * 1.2
    assert task.compute_losses(batch, seed=0)["reconstruction"].item() == pytest.approx(expected)
    config.loss.vae_sprite_weight = 0.0
    assert task.compute_losses(batch, seed=0)["reconstruction"].item() == pytest.approx(0.25 * 0.5)
    with pytest.raises(ConfigError, match="vae_sprite_weight"):
        stage_config("vae", tmp_path / "x", base_model_dir, loss={"vae_sprite_weight": -1.0})


def test_vae_latent_channels_setting_reaches_the_unet_the_image_controlnet_and_the_pipeline(tmp_path):
    """A base model with 8 latent channels: the UNet denoises 8 channels, the image ControlNet reads the
    8-channel first-frame latents, and the pipeline samples and decodes such latents."""
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline
    from imageconductor.training.config import BaseModelConfig

    components = build_base_components(
        BaseModelConfig(**TINY_MODEL, vae_latent_channels=8), seed=0, captions=CAPTIONS
    )
    assert components.unet.config.in_channels == components.unet.config.out_channels == 8
    assert components.image_controlnet.config.conditioning_channels == 8
    with torch.no_grad():  # let the image ControlNet's residuals reach the UNet
        for module in components.image_controlnet.modules():
            if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
                module.weight.normal_(std=0.1, generator=torch.Generator().manual_seed(1))
    pipe = ImageConductorPipeline.from_pretrained(str(save_components(components, tmp_path / "model")))
    pipe.set_progress_bar_config(disable=True)
    tracks = [[[10, 10], [30, 20]]]  # one track, pixels of the 64x48 frame

    dark, bright = (torch.full((3, 48, 64), value) for value in (0.1, 0.9))
    latents = _tiny_latents(pipe, dark, tracks)
    assert latents.shape == (1, 8, 4, 6, 8)
    # the first frame steers the sample
    assert not torch.allclose(latents, _tiny_latents(pipe, bright, tracks), atol=1e-4)
    assert pipe.decode_latents(latents).shape == (1, 3, 4, 48, 64)


def test_base_stage_can_train_the_flow_controlnet_and_drop_it_per_clip(base_model_dir, tmp_path):
    """model.base.train_flow_controlnet: stage 0 trains the flow ControlNet with the UNet; data.flow_dropout
    clips get exactly the prediction without it (as with control off at inference)."""
    model = {
        "base": {**TINY_MODEL, "train_flow_controlnet": True},
        "pretrained_model_path": str(base_model_dir),
    }
    config = stage_config("base", tmp_path / "joint", base_model_dir, model=model)
    task, history, before, after, trainable = _train_in_memory(config)
    flow_trained = {name for name in trainable if name.startswith("flow_controlnet.")}
    assert flow_trained and all(".lora_" not in name for name in flow_trained)
    assert {name.split(".")[0] for name in trainable} == {
        "unet",
        "image_controlnet",
        "flow_controlnet",
        "text_encoder",
    }
    moved = {name for name in flow_trained if not torch.equal(before[name], after[name])}
    assert len(moved) >= 0.95 * len(flow_trained)

    plain = build_task(
        stage_config("base", tmp_path / "plain", base_model_dir), load_components(base_model_dir)
    )
    assert plain.models.flow_controlnet is None and plain.denoiser.flow_controlnet is None

    components = load_components(base_model_dir)
    dropout = {**TINY_DATA, "flow_dropout": 0.5}
    task = DiffusionTrainingTask(
        stage_config("base", tmp_path / "drop", base_model_dir, model=model, data=dropout), components
    )
    _perturb_flow_controlnet(components)
    generator = torch.Generator().manual_seed(5)
    sample = torch.randn(2, 4, 4, 6, 8, generator=generator)
    timesteps = torch.tensor([50, 600])
    ids = task.tokenize(["a red star moves right", "camera pans up"])
    image = torch.randn(2, 5, 4, 6, 8, generator=generator)
    flow = torch.randn(2, 2, 4, 48, 64, generator=generator)
    with torch.no_grad():
        with_flow = task.denoiser(sample, timesteps, ids, image, flow)
        without = task.denoiser(sample, timesteps, ids, image, None)
        mixed = task.denoiser(sample, timesteps, ids, image, flow, torch.tensor([1.0, 0.0]))
    assert (with_flow - without).abs().mean() > 1e-3
    assert torch.allclose(mixed[0], with_flow[0], atol=1e-6) and torch.allclose(
        mixed[1], without[1], atol=1e-6
    )
    # the dropped clips are drawn per step from the seed, about flow_dropout of them
    batch = type("Batch", (), {"size": 400})()
    keep = task._flow_keep(batch, seed=11)
    assert torch.equal(keep, task._flow_keep(batch, seed=11)) and not torch.equal(
        keep, task._flow_keep(batch, 12)
    )
    assert 0.4 < 1 - keep.mean().item() < 0.6


def test_three_level_vae_gives_a_four_times_finer_latent_grid_end_to_end(tmp_path):
    """vae_block_out_channels with three levels: latents at 1/4 of the frame, a flow ControlNet fed the
    4x4-unshuffled flow (32 channels), a base stage that trains on it, and a pipeline whose samples depend
    on the trajectories it is given."""
    from imageconductor.conditioning import pixel_unshuffle_video
    from imageconductor.pipelines.image_conductor import ImageConductorPipeline
    from imageconductor.training.base_model import build_vae
    from imageconductor.training.config import BaseModelConfig

    for levels in ([8, 8], [8, 8, 8, 8, 8]):
        with pytest.raises(ValueError, match="4 levels .* or 3"):
            build_vae(BaseModelConfig(vae_block_out_channels=levels))
    fine = {**TINY_MODEL, "vae_block_out_channels": [8, 8, 8]}
    components = build_base_components(BaseModelConfig(**fine), seed=0, captions=CAPTIONS)
    assert components.flow_controlnet.config.conditioning_channels == 2 * 4 * 4
    _perturb_flow_controlnet(components)
    model_dir = save_components(components, tmp_path / "model")

    pipe = ImageConductorPipeline.from_pretrained(str(model_dir))
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 4
    condition = torch.randn(1, 2, 4, 48, 64, generator=torch.Generator().manual_seed(2))
    folded = pipe.flow_controlnet.fold_condition(condition, latent_size=(12, 16))
    assert torch.equal(folded, pixel_unshuffle_video(condition, 4))

    gray = torch.full((3, 48, 64), 0.5)
    right = _tiny_latents(pipe, gray, [[[10, 10], [30, 10]]])
    assert right.shape == (1, 4, 4, 12, 16)
    assert not torch.allclose(right, _tiny_latents(pipe, gray, [[[30, 10], [10, 10]]]), atol=1e-4)

    model = {"base": {**fine, "train_flow_controlnet": True}, "pretrained_model_path": str(model_dir)}
    config = stage_config("base", tmp_path / "run", model_dir, model=model)
    _, history, before, after, trainable = _train_in_memory(config)
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)
    assert any(not torch.equal(before[name], after[name]) for name in trainable if name.startswith("flow_"))
