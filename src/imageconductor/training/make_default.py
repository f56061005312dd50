"""Reproduce the embedded default model from scratch, seeded: all five stages, one command.

    imageconductor train default --out src/imageconductor/assets/default_model

Stages run in order ``vae → base → controlnet → camera → object`` on synthetic-world clips; each stage's
``final`` folder feeds the next. Every stage checkpoints and a rerun resumes where it stopped (finished
stages are skipped), so an interrupted build loses at most ``checkpoint_every`` steps. The finished model
folder gets a model card (``README.md``: data, sizes, steps, losses, throughput), and its
``model_index.json`` records the native video size and the synthetic world it was trained on.

A plan (YAML) sets what every stage shares and what each stage changes; `DEFAULT_PLAN` is the built-in one
(``configs/default_model.yaml`` is a copy). ``--steps-scale 0.01`` gives a quick trial run; ``--set`` changes
single values (ablations: ``--set stages.object.loss.ortho_weight=0``) and ``--until`` stops after a stage.

A build can also run in parts: ``export_to`` (``--export-stages``) writes every finished stage as files to
commit, and ``resume_from`` (``--resume-from``) starts after the last stage of such a folder
(`training.stage_export`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate.state import AcceleratorState, GradientState

from imageconductor.pipelines.settings import write_model_settings
from imageconductor.training.config import SAVED_CONFIG_FILE, TrainingConfig
from imageconductor.training.run import run_training
from imageconductor.training.stage_export import (
    DONE_FILE,
    StageSetupError,
    differing_settings,
    export_stage,
    exported_config,
    exported_stages,
    exported_summary,
    restore_stage,
    stage_finished,
    stage_matches_export,
    verified_files,
)
from imageconductor.trajectories import FlowEncoding

logger = logging.getLogger(__name__)

STAGE_ORDER = ("vae", "base", "controlnet", "camera", "object")
METRICS_HEADING = "## Metrics"

#: How the motion ControlNet of the embedded default sees a track: a blur scaled to the 96x64 frame ("auto":
#: σ 10 x 64/256) whose kernel peaks at 1, so one drawn point reaches it with its displacement in pixels,
#: not 1/628 of it. The camera and object stages inherit the encoding from the model they load.
FLOW_ENCODING: dict[str, Any] = {"blur_sigma": 2.5, "kernel_size": 25, "kernel_normalization": "peak"}

#: The built-in plan of the embedded default (sizes chosen for 2 CPU cores; see docs/training.md).
DEFAULT_PLAN: dict[str, Any] = {
    "seed": 0,
    "shared": {
        "batch_size": 4,
        "checkpoint_every": 100,
        "keep_checkpoints": 1,
        "log_every": 25,
        "data": {
            "num_frames": 8,
            "height": 64,
            "width": 96,
            "num_clips": 200_000,
            "grid_size": 16,
            "texture_scale": 3.0,
            "motion_scale": 3.0,
        },
        "model": {
            "lora_rank": 16,
            "base": {
                "vae_block_out_channels": [16, 32, 64, 64],
                "vae_norm_num_groups": 1,
                "prediction_type": "v_prediction",
                "zero_terminal_snr": True,
            },
        },
        "optim": {"learning_rate": 5.0e-4, "lr_scheduler": "constant_with_warmup", "warmup_steps": 50},
    },
    "stages": {
        # the VAE learns single frames, for which the speed of motion does not matter
        "vae": {
            "max_steps": 1500,
            "data": {"motion_scale": 1.0},
            "optim": {"learning_rate": 1.0e-3, "lr_scheduler": "cosine"},
            # sprite pixels count 10x: unweighted, the VAE gave them up for the background (error 34.5 vs 11.8 /255)
            "loss": {"vae_sprite_weight": 9.0},
        },
        # The base UNet learns along with the motion ControlNet on dense tracks (a fifth of the clips with
        # the ControlNet off): a UNet trained alone never learned to use a motion direction, so the later
        # stages could not either (docs/experiments/2026-12-02-base-trains-motion-controlnet.md). Cosine
        # decay: at a constant rate the loss was still falling at 1400 steps.
        "base": {
            "max_steps": 4800,
            "optim": {"lr_scheduler": "cosine"},
            "data": {"flow_dropout": 0.2, "curriculum": {"dense_steps": -1}},
            "model": {"base": {"train_flow_controlnet": True}, "flow_encoding": FLOW_ENCODING},
        },
        "controlnet": {
            "max_steps": 2000,
            "data": {"curriculum": {"dense_steps": 750}},
            "model": {"flow_encoding": FLOW_ENCODING},
        },
        "camera": {"max_steps": 400, "optim": {"learning_rate": 1.0e-3}},
        "object": {"max_steps": 400, "optim": {"learning_rate": 1.0e-3}, "loss": {"ortho_weight": 0.1}},
    },
}

#: A seconds-long plan for tests and trials (tiny networks and clips).
SMOKE_PLAN: dict[str, Any] = {
    "seed": 0,
    "shared": {
        "batch_size": 2,
        "checkpoint_every": 1,
        "keep_checkpoints": 1,
        "log_every": 1,
        "data": {"num_frames": 4, "height": 48, "width": 64, "num_clips": 16, "grid_size": 4},
        "model": {
            "lora_rank": 4,
            "base": {
                "block_out_channels": [16, 32],
                "norm_num_groups": 8,
                "cross_attention_dim": 32,
                "text_hidden_size": 32,
                "text_layers": 1,
                "text_heads": 2,
                "vae_block_out_channels": [8, 8, 8, 8],
                "motion_num_attention_heads": 2,
            },
        },
        "optim": {"learning_rate": 1.0e-3, "lr_scheduler": "constant"},
    },
    "stages": {
        **{stage: {"max_steps": 2} for stage in STAGE_ORDER},
        "controlnet": {
            "max_steps": 2,
            "model": {"flow_encoding": {"blur_sigma": 1.5, "kernel_size": 9, "kernel_normalization": "peak"}},
        },
    },
}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in recursively (``update`` wins; neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def plan_with_overrides(plan: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``plan`` with ``KEY.PATH=VALUE`` items set (VALUE read as YAML), e.g.
    ``stages.object.loss.ortho_weight=0``; raises ValueError for an item without ``=`` or a path through
    a non-mapping."""
    # A JSON round trip, not deepcopy: deepcopy keeps values shared between stages shared (FLOW_ENCODING
    # is one dict in two stages), so setting one stage's value would set the other's too.
    plan = json.loads(json.dumps(plan))
    for item in overrides:
        path, sep, text = item.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise ValueError(f"override {item!r} must look like KEY.PATH=VALUE")
        node = plan
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {'.'.join(keys[: depth + 1])} is not a mapping")
        node[keys[-1]] = yaml.safe_load(text)
    return plan


def stage_configs(plan: dict[str, Any], work_dir: Path, steps_scale: float = 1.0) -> list[TrainingConfig]:
    """The five validated stage configs of ``plan`` (outputs under ``work_dir/<stage>``, chained)."""
    unknown = set(plan.get("stages", {})) - set(STAGE_ORDER)
    if unknown:
        raise ValueError(f"plan has unknown stage(s) {sorted(unknown)}; stages are {list(STAGE_ORDER)}")
    configs = []
    previous: str | None = None
    for stage in STAGE_ORDER:
        settings = deep_merge(plan.get("shared", {}), plan.get("stages", {}).get(stage, {}))
        settings["stage"] = stage
        settings["seed"] = int(plan.get("seed", 0))
        settings["output_dir"] = str(work_dir / stage)
        settings.setdefault("model", {})["pretrained_model_path"] = previous
        if steps_scale != 1.0:
            settings["max_steps"] = max(1, math.ceil(settings.get("max_steps", 1000) * steps_scale))
        configs.append(TrainingConfig.from_dict(settings))
        previous = str(work_dir / stage / "final")
    return configs


def make_default(
    out: str | Path,
    plan: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
    steps_scale: float = 1.0,
    until: str | None = None,
    resume_from: str | Path | None = None,
    export_to: str | Path | None = None,
) -> Path:
    """Run every stage (resuming/skipping finished work), then write the model folder to ``out``.

    ``until`` names the last stage to run (e.g. ``"controlnet"`` for an ablation of that stage alone); the
    folder is then that stage's model. ``resume_from``: a folder of exported stages (written with
    ``export_to``) that the work dir takes its first stages from, each checked against the plan's settings
    and file by file; ``export_to``: where every finished stage is exported as soon as it is finished.
    Every refusal before training (settings that differ, a damaged export, a work dir holding other runs)
    is a `StageSetupError` and happens before anything is trained or written.
    """

    if until is not None and until not in STAGE_ORDER:
        raise ValueError(f"until must be one of {list(STAGE_ORDER)}, got {until!r}")
    plan = plan or DEFAULT_PLAN
    out = Path(out)
    work_dir = Path(work_dir) if work_dir is not None else out.parent / f"{out.name}-work"
    every_stage = stage_configs(plan, work_dir, steps_scale)
    configs = every_stage if until is None else every_stage[: STAGE_ORDER.index(until) + 1]
    committed = check_committed_stages(Path(resume_from), every_stage, configs) if resume_from else []
    for config in configs:  # all before any training: a clash must not surface an hour in
        check_earlier_settings(config)
    for stage in committed:
        restore_stage(Path(resume_from), stage, work_dir / stage)
        logger.info("stage %s taken from %s", stage, resume_from)
    summaries = []
    for config in configs:
        done_file = Path(config.output_dir) / DONE_FILE
        if stage_finished(Path(config.output_dir)):
            logger.info("stage %s already finished, skipping", config.stage)
        else:
            _reset_accelerate_state()
            started = time.perf_counter()
            result = run_training(config, resume="auto")
            summary = {
                "stage": config.stage,
                "steps": config.max_steps,
                "batch_size": config.batch_size,
                # summed over interrupted runs (up to the checkpoint each resume started from)
                "seconds": round(time.perf_counter() - started + result.earlier_seconds, 1),
                "samples_per_second": round(result.samples_per_second, 3),
                "final_losses": _mean_of_last(result.history, 20),
                "environment": build_environment(),
            }
            done_file.write_text(json.dumps(summary, indent=2) + "\n")
        summaries.append(json.loads(done_file.read_text()))
        if export_to is not None and export_stage(
            Path(config.output_dir), Path(export_to), config.stage, STAGE_ORDER
        ):
            logger.info("stage %s exported to %s", config.stage, Path(export_to) / config.stage)
    final = Path(configs[-1].output_dir) / "final"
    temporary = out.with_name(out.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    shutil.copytree(final, temporary)
    drop_build_paths(temporary)
    write_model_settings(temporary, **configs[-1].data.synthetic_model_settings(plan.get("seed", 0)))
    (temporary / "README.md").write_text(model_card(plan, configs, summaries, steps_scale))
    shutil.rmtree(out, ignore_errors=True)
    temporary.rename(out)
    return out


def build_environment() -> dict[str, Any]:
    """What a stage's floating-point results depend on besides its settings: the torch version and the
    number of threads (sums split across threads round differently)."""
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def check_earlier_settings(config: TrainingConfig) -> None:
    """Raise StageSetupError if ``config.output_dir`` holds a run (finished or not) made with other
    settings than ``config``: skipping or resuming it would mix two plans. Where the folders are does not
    count."""
    saved_file = Path(config.output_dir) / SAVED_CONFIG_FILE
    if not saved_file.is_file():
        return
    differing = differing_settings(TrainingConfig.load(saved_file), config)
    if differing:
        raise StageSetupError(
            f"stage {config.stage!r} in {config.output_dir} was run with other settings "
            f"({', '.join(differing)}); use another --work-dir, or delete that stage folder to train it again"
        )


def check_committed_stages(
    folder: Path, every_stage: list[TrainingConfig], configs: list[TrainingConfig]
) -> list[str]:
    """The stages of ``configs`` that the work dir is to take from the export ``folder``, after checking
    that each was trained with its config's settings and that the work dir holds no other run of it (nor
    of a later stage, which would have been trained on top of another). Raises StageSetupError."""
    wanted = {config.stage: config for config in configs}
    stages = [stage for stage in exported_stages(folder, STAGE_ORDER) if stage in wanted]
    for stage in stages:
        differing = differing_settings(exported_config(folder, stage), wanted[stage])
        if differing:
            raise StageSetupError(
                f"--resume-from: stage {stage!r} in {folder} was trained with other settings "
                f"({', '.join(differing)}); build with its plan, or without --resume-from"
            )
    here = build_environment()
    for stage in stages:
        built = exported_summary(folder, stage).get("environment")
        if built is not None and built != here:
            logger.warning(
                "stage %s was built with %s, this run uses %s: the later stages may differ from a build in "
                "one go in the last bits (floating-point sums depend on the threads and the torch build)",
                stage,
                built,
                here,
            )
    to_restore = []
    for stage in stages:
        stage_dir = Path(wanted[stage].output_dir)
        if not stage_dir.exists():
            to_restore.append(stage)
        elif not stage_matches_export(stage_dir, folder, stage):
            raise StageSetupError(
                f"--resume-from: the work dir already holds another run of stage {stage!r} ({stage_dir}); "
                "use another --work-dir, or delete that stage folder"
            )
    for stage in to_restore:
        verified_files(folder, stage)
    if to_restore:
        first = STAGE_ORDER.index(to_restore[0])
        later = [c.output_dir for c in every_stage[first + 1 :] if c.stage not in stages]
        present = [path for path in later if Path(path).exists()]
        if present:
            raise StageSetupError(
                f"--resume-from: the work dir holds {present[0]}, trained on top of another stage "
                f"{to_restore[0]!r} than the one in {folder}; use another --work-dir"
            )
    return to_restore


def model_card(
    plan: dict[str, Any], configs: list[TrainingConfig], summaries: list[dict], steps_scale: float
) -> str:
    """Markdown model card: data, sizes, the steps and final losses of every stage."""
    base = configs[0].model.base
    data = configs[0].data
    sprite_scale = configs[-1].data.sprite_scale  # stated only when set, as in the model index
    sprites = f"sprite scale {sprite_scale:g}, " if sprite_scale != 1.0 else ""
    lines = [
        "# imageconductor embedded default model",
        "",
        "A small Image Conductor model trained from scratch on the synthetic world of `imageconductor.synthetic`",
        "(no pretrained weights): VAE, CLIP-style text encoder with its own tokenizer, AnimateDiff-style UNet",
        "with motion modules, SparseCtrl-RGB image ControlNet, motion ControlNet with `camera` / `object` LoRA.",
        "",
        "Reproduce: `imageconductor train default --out <folder>`"
        + (f" (this build: `--steps-scale {steps_scale}`)" if steps_scale != 1.0 else ""),
        "",
        "## Data",
        "",
        f"- synthetic clips rendered on the fly, seed {plan.get('seed', 0)}: {data.num_frames} frames of "
        f"{data.width}x{data.height}, tracks of a {data.grid_size}x{data.grid_size} grid (exact ground truth)",
        f"- world settings: background texture scale {configs[-1].data.texture_scale:g}, {sprites}motion "
        "scale " + ", ".join(f"{c.stage} {c.data.motion_scale:g}" for c in configs),
        "- stage kinds: vae/base/controlnet all kinds; camera LoRA camera-only clips; object LoRA mixed clips",
        "",
        "## Networks",
        "",
        f"- UNet / ControlNets: block channels {base.block_out_channels}, {base.layers_per_block} layer(s) per block,"
        f" cross-attention dim {base.cross_attention_dim}; LoRA rank {configs[-1].model.lora_rank}",
        f"- VAE channels {base.vae_block_out_channels}; text encoder {base.text_layers} layers x "
        f"{base.text_hidden_size}",
        f"- noise: DDIM (released betas), {base.prediction_type}"
        + (", zero terminal SNR (sampling starts at t = 999)" if base.zero_terminal_snr else ""),
        f"- flow condition: {_encoding_line(configs)}",
        "",
        "## Training",
        "",
        "| stage | steps | batch | seconds | samples/s | final losses (mean of last 20 steps) |",
        "|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in summary["final_losses"].items())
        lines.append(
            f"| {summary['stage']} | {summary['steps']} | {summary['batch_size']} | {summary['seconds']} | "
            f"{summary['samples_per_second']} | {losses} |"
        )
    lines += [
        "",
        METRICS_HEADING,
        "",
        "Not measured yet: `imageconductor evaluate synthetic --model <folder> --update-card` writes",
        "them here (`docs/evaluation.md` in the repository explains the rows).",
        "",
    ]
    return "\n".join(lines)


def drop_build_paths(folder: Path) -> None:
    """Remove ``_name_or_path`` (where a component was last loaded from: a path on the build machine)
    from the component configs in ``folder``; diffusers sets it again on every load."""
    for config_file in folder.glob("*/config.json"):
        config = json.loads(config_file.read_text())
        if config.pop("_name_or_path", None) is not None:
            config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def write_card_metrics(folder: str | Path, table: str, command: str) -> Path:
    """Replace the ``## Metrics`` section of the model card in ``folder`` by ``table`` and the ``command``
    that measured it (everything after the heading goes; the heading is appended if missing)."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        raise FileNotFoundError(f"no model card at {card}")
    head, _, _ = card.read_text().partition(METRICS_HEADING)
    section = [
        METRICS_HEADING,
        "",
        f"Measured with `{command}` (`docs/evaluation.md` in the repository explains the rows):",
        "",
        table.strip(),
        "",
    ]
    card.write_text(head.rstrip("\n") + "\n\n" + "\n".join(section))
    return card


def _encoding_line(configs: list[TrainingConfig]) -> str:
    """The flow encoding the plan's last stage ends up with (each stage keeps the loaded one when unset),
    then any stage that trained with another."""
    encoding = None
    for config in configs:
        encoding = config.model.flow_encoding or encoding
    if encoding is None or encoding.is_official:
        line = "the released encoding (99x99 Gaussian, sigma 10, summing to 1)"
    else:
        line = (
            f"Gaussian {_blur_size(encoding)}, kernel normalised to {encoding.kernel_normalization} 1 "
            "(`flow_encoding` in model_index.json)"
        )
    for config in configs:
        other = config.model.flow_encoding
        if other is not None and other != encoding:
            line += f"; stage {config.stage} trained with {_blur_size(other)}"
            if encoding is None or other.kernel_normalization != encoding.kernel_normalization:
                line += f", kernel normalised to {other.kernel_normalization} 1"
    return line


def _blur_size(encoding: FlowEncoding) -> str:
    return f"sigma {encoding.blur_sigma}, {encoding.kernel_size}x{encoding.kernel_size}"


def _mean_of_last(history: list[dict[str, float]], count: int) -> dict[str, float]:
    tail = history[-count:]
    if not tail:
        return {}
    names = [name for name in tail[-1] if name not in ("step", "lr")]
    return {name: sum(record[name] for record in tail if name in record) / len(tail) for name in names}


def _reset_accelerate_state() -> None:
    # Each stage builds its own Accelerator; the process-wide state must not carry over between them.

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def load_plan(plan_file: str | Path | None = None, profile: str = "default") -> dict[str, Any]:
    """The plan in ``plan_file`` (YAML), else the built-in one of ``profile`` ("default" or "smoke")."""
    if plan_file is None:
        return SMOKE_PLAN if profile == "smoke" else DEFAULT_PLAN
    path = Path(plan_file)
    if not path.is_file():
        raise FileNotFoundError(f"plan file not found: {path}")
    plan = yaml.safe_load(path.read_text())
    if not isinstance(plan, dict):
        raise ValueError(f"{path} must hold a YAML mapping (a plan)")
    return plan
