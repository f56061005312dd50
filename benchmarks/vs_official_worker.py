"""One sampling run for ``benchmarks/vs_official.py``, in a fresh process of its own.

``--side ours`` runs this project's pipeline (the interpreter must import ``imageconductor``);
``--side official`` runs the authors' released pipeline from ``--official-code`` and must be started
with the Python of the official environment (see docs/pipeline.md, "Benchmarks against the released
code"). Only the official side imports the official code, and only inside :func:`_official_pipeline`.

Both sides read the same inputs file (prompt, negative prompt, initial latents, first-frame latents,
flow condition, sizes; written by :func:`save_inputs`), sample with DDIM and CFG, decode the video frame
by frame, and write one result file (:func:`write_result`): the final latents, the decoded video and a
JSON record of the step times (wall-clock between consecutive step callbacks, so the first step is not
timed), the resident memory after loading, the peak while sampling and the process's peak.

This module imports nothing outside the standard library, torch and safetensors at the top, so the
official environment can run it and the driver can import its helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import json
import os
import resource
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

INPUT_TENSORS = ("latents", "image_latents", "flow_condition")
STUBBED_MODULES = ("torchvision", "imageio", "matplotlib")
PROFILE_ROWS = 12


# --- memory -------------------------------------------------------------------------------------------


def status_mib(field: str) -> float:
    """A memory line of /proc/self/status in MiB (VmRSS: now, VmHWM: peak since start or the last reset)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: peak since start


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (Linux: write 5 to /proc/self/clear_refs); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- files --------------------------------------------------------------------------------------------


def save_inputs(path: Path, tensors: dict[str, torch.Tensor], settings: dict[str, Any]) -> None:
    """Write the shared inputs: the tensors of ``INPUT_TENSORS`` and the JSON-able ``settings``."""
    missing = [name for name in INPUT_TENSORS if name not in tensors]
    if missing:
        raise ValueError(f"inputs lack {missing}")
    tensors = {name: tensors[name].detach().to(torch.float32).contiguous() for name in INPUT_TENSORS}
    save_file(tensors, str(path), metadata={"settings": json.dumps(settings)})


def load_inputs(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`save_inputs` wrote: ``(tensors, settings)``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        settings = json.loads(handle.metadata()["settings"])
    return load_file(str(path)), settings


def write_result(path: Path, record: dict[str, Any], latents: torch.Tensor, video: torch.Tensor) -> None:
    """Write one run's result: final latents, decoded video ``(B, 3, F, H, W)`` and a JSON record."""
    tensors = {"latents": latents.detach().float().contiguous(), "video": video.detach().float().contiguous()}
    save_file(tensors, str(path), metadata={"record": json.dumps(record)})


def read_result(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read what :func:`write_result` wrote: ``(record, {"latents": ..., "video": ...})``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        record = json.loads(handle.metadata()["record"])
    return record, load_file(str(path))


def step_durations(stamps: list[float]) -> list[float]:
    """Seconds between consecutive step-end stamps: the duration of every step but the first."""
    return [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]


# --- profile ------------------------------------------------------------------------------------------


def _is_attention(module: torch.nn.Module) -> bool:
    """A diffusers attention layer (a class named ``Attention`` or derived from one), in any diffusers."""
    return any(cls.__name__ == "Attention" for cls in type(module).__mro__)


@contextlib.contextmanager
def attention_ranges(models: list[torch.nn.Module]) -> Iterator[None]:
    """Mark every attention layer's forward (projections and attention) as the profiler range "attention"."""
    handles = []
    for model in models:
        for module in model.modules():
            if not _is_attention(module):
                continue

            def enter(module: torch.nn.Module, *args: Any) -> None:
                scope = torch.profiler.record_function("attention")
                scope.__enter__()
                module._benchmark_scopes = [*getattr(module, "_benchmark_scopes", []), scope]

            def leave(module: torch.nn.Module, *args: Any) -> None:
                module._benchmark_scopes.pop().__exit__(None, None, None)

            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def profile_record(profiler: torch.profiler.profile, wall: float) -> dict[str, Any]:
    """The profiled step in figures: its wall-clock, the attention layers' CPU time and the top ops by
    self CPU time (seconds)."""
    averages = profiler.key_averages()
    attention = sum(event.cpu_time_total for event in averages if event.key == "attention") / 1e6
    ops = sorted(
        (event for event in averages if event.key != "attention"),
        key=lambda event: event.self_cpu_time_total,
        reverse=True,
    )
    total_self = sum(event.self_cpu_time_total for event in averages) / 1e6
    return {
        "wall_s": wall,
        "attention_s": attention,
        "self_cpu_total_s": total_self,
        "top_ops": [
            {"name": event.key, "self_cpu_s": event.self_cpu_time_total / 1e6, "calls": event.count}
            for event in ops[:PROFILE_ROWS]
        ],
    }


# --- the two pipelines --------------------------------------------------------------------------------


def _stub_modules() -> None:
    """Empty stand-ins for packages the official modules import but sampling never uses."""
    for name in STUBBED_MODULES:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module


def _checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A ``.ckpt`` state dict, unwrapped from ``"state_dict"`` when it is wrapped."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


def _official_pipeline(code: Path, fixture: Path, official_base: Path):
    """The released pipeline, built as the authors' main/inference.py builds it, on the fixture's weights."""
    sys.path.insert(0, str(code))  # its own packages (modules, pipelines, utils, its vendored peft) win
    import diffusers  # noqa: F401  (imported before the stubs, so its package checks see the real world)
    import transformers  # noqa: F401

    _stub_modules()
    from diffusers import AutoencoderKL, DDIMScheduler
    from modules.unet import UNet3DConditionFlowModel
    from omegaconf import OmegaConf
    from pipelines.pipeline_imagecoductor import ImageConductorPipeline
    from transformers import CLIPTextModel, CLIPTokenizer
    from utils.lora_utils import add_LoRA_to_controlnet
    from utils.utils import create_flow_controlnet, create_image_controlnet

    sd15, weights = fixture / "sd15-tiny", fixture / "official-weights"
    inference = OmegaConf.load(code / "configs" / "inference" / "inference.yaml")
    unet = UNet3DConditionFlowModel.from_pretrained_2d(
        str(official_base),
        subfolder="unet",
        unet_additional_kwargs=OmegaConf.to_container(inference.unet_additional_kwargs),
    )
    image_controlnet = create_image_controlnet(str(code / "configs/inference/image_condition.yaml"), unet)
    flow_controlnet = create_flow_controlnet(str(code / "configs/inference/flow_condition.yaml"), unet)
    flow_state = _checkpoint(weights / "flow_controlnet.ckpt")
    rank = next(value.shape[0] for key, value in flow_state.items() if ".lora_A.omcm_weights." in key)
    add_LoRA_to_controlnet(rank, flow_controlnet)
    states = (_checkpoint(weights / "unet.ckpt"), _checkpoint(weights / "image_controlnet.ckpt"), flow_state)
    for model, state in zip((unet, image_controlnet, flow_controlnet), states, strict=True):
        _, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise RuntimeError(f"{type(model).__name__}: unexpected keys {unexpected[:5]}")
    pipe = ImageConductorPipeline(
        unet=unet,
        vae=AutoencoderKL.from_pretrained(sd15, subfolder="vae"),
        tokenizer=CLIPTokenizer.from_pretrained(sd15, subfolder="tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(sd15, subfolder="text_encoder"),
        scheduler=DDIMScheduler(**OmegaConf.to_container(inference.noise_scheduler_kwargs)),
        image_controlnet=image_controlnet,
        flow_controlnet=flow_controlnet,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _official_sampler(pipe, tensors: dict[str, torch.Tensor], settings: dict[str, Any]):
    """``run(on_step) -> (final latents, video)`` for the released pipeline's call."""
    mode = settings["mode"]

    def run(on_step: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor]:
        final: list[torch.Tensor] = []

        def callback(step: int, timestep: Any, camera_latents: torch.Tensor, object_latents: torch.Tensor):
            final[:] = [object_latents if mode == "object" else camera_latents]
            on_step()

        video = pipe(
            settings["prompt"],
            negative_prompt=settings["negative_prompt"],
            video_length=settings["frames"],
            height=settings["height"],
            width=settings["width"],
            num_inference_steps=settings["steps"],
            guidance_scale=settings["guidance_scale"],
            latents=tensors["latents"],
            controlnet_images=tensors["image_latents"],
            controlnet_flows=tensors["flow_condition"],
            control_mode=mode,
            eval_mode=True,
            callback=callback,
        ).videos
        return final[0].clone(), video

    return run


def _our_pipeline(fixture: Path):
    """This project's pipeline on the fixture's files (``tests/official_tiny.py``: ``from_official``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from official_tiny import load_official_tiny

    return load_official_tiny(torch.float32, fixture)


def _our_sampler(pipe, tensors: dict[str, torch.Tensor], settings: dict[str, Any]):
    """``run(on_step) -> (final latents, video)`` for this project's pipeline call."""

    def run(on_step: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor]:
        final: list[torch.Tensor] = []

        def callback(pipeline: Any, step: int, timestep: Any, values: dict) -> dict:
            final[:] = [values["latents"]]
            on_step()
            return {}

        video = pipe(
            prompt=settings["prompt"],
            negative_prompt=settings["negative_prompt"],
            num_frames=settings["frames"],
            height=settings["height"],
            width=settings["width"],
            num_inference_steps=settings["steps"],
            guidance_scale=settings["guidance_scale"],
            latents=tensors["latents"],
            image_latents=tensors["image_latents"],
            flow_condition=tensors["flow_condition"],
            mode=settings["mode"],
            output_type="pt",
            decode_chunk_size=1,
            callback_on_step_end=callback,
        ).frames
        return final[0].clone(), video

    return run


# --- one run ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load one side's pipeline, sample once (profiling the second step with ``--profile``), write the
    result file and return its record."""
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tensors, settings = load_inputs(args.inputs)
    if args.side == "official":
        pipe = _official_pipeline(args.official_code, args.fixture, args.official_base)
        sampler = _official_sampler(pipe, tensors, settings)
        models = [pipe.unet, pipe.image_controlnet, pipe.flow_controlnet]
    else:
        pipe = _our_pipeline(args.fixture)
        if args.compile:
            pipe.compile_networks(dynamic=False)  # compiles during the first (untimed) step
        sampler = _our_sampler(pipe, tensors, settings)
        models = [pipe.unet, pipe.image_controlnet, pipe.flow_controlnet]
    load_s = time.perf_counter() - started
    loaded = status_mib("VmRSS")
    load_peak = status_mib("VmHWM")
    reset = reset_peak_rss()  # the peak read at the last step is then sampling's own
    stamps: list[float] = []
    sampling_peak: list[float] = []
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    def on_step() -> None:
        stamps.append(time.perf_counter())
        if args.profile and len(stamps) == 1:
            profiler.start()
        elif args.profile and len(stamps) == 2:
            profiler.stop()
        if len(stamps) == settings["steps"]:
            sampling_peak.append(status_mib("VmHWM"))

    sampling_started = time.perf_counter()
    with attention_ranges(models) if args.profile else contextlib.nullcontext():
        latents, video = sampler(on_step)
    record = {
        "side": args.side,
        "load_s": load_s,
        "step_s": step_durations(stamps),
        "first_step_s": stamps[0] - sampling_started,
        "compiled": bool(getattr(args, "compile", False)),
        "rss_after_load_mib": loaded,
        "load_peak_mib": load_peak,
        "sampling_peak_mib": sampling_peak[0],
        "peak_rss_mib": max(load_peak, status_mib("VmHWM")),
        "peak_reset": reset,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if args.profile:
        record["profile"] = profile_record(profiler, stamps[1] - stamps[0])
    write_result(args.output, record, latents, video)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=("ours", "official"), required=True)
    parser.add_argument("--inputs", type=Path, required=True, help="file written by save_inputs")
    parser.add_argument("--output", type=Path, required=True, help="result file to write")
    parser.add_argument("--fixture", type=Path, required=True, help="official-tiny fixture folder")
    parser.add_argument("--official-code", type=Path, help="copy of the authors' repository (official side)")
    parser.add_argument(
        "--official-base", type=Path, help="SD1.5 folder whose unet/ holds a .bin (official side)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="ours: torch.compile the networks first")
    parser.add_argument("--profile", action="store_true", help="profile the second sampling step")
    args = parser.parse_args(argv)
    if args.side == "official" and (args.official_code is None or args.official_base is None):
        parser.error("--side official needs --official-code and --official-base")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
