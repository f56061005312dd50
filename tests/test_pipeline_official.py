"""The public pipeline call reproduces the authors' released sampler (official-tiny goldens).

Everything is called through ``ImageConductorPipeline.from_official`` and ``pipe(...)``: prompt strings,
first-frame latents, the flow condition (or the trajectory list), the starting latents and the sampler
settings of ``manifest.json``; intermediate latents come from the step callback.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

MODES = ("object", "camera")


def _assert_matches(got: torch.Tensor, golden: torch.Tensor, tol: float, name: str) -> None:
    assert tuple(got.shape) == tuple(golden.shape), (
        f"{name}: shape {tuple(got.shape)} != {tuple(golden.shape)}"
    )
    error = (got.double() - golden.double()).abs().max().item()
    scale = golden.abs().max().item()
    assert error <= tol * scale, f"{name}: max|diff| {error:.3g} > {tol} x max|golden| {scale:.3g}"


@pytest.fixture(scope="module")
def pipe(official_pipeline):
    return official_pipeline


@pytest.fixture(scope="module")
def goldens(official_dir):
    return load_file(official_dir / "sampling.safetensors"), load_file(
        official_dir / "single_step.safetensors"
    )


def _sample(pipe, manifest, goldens, mode, **overrides):
    sampling, step = goldens
    captured: list[torch.Tensor] = []
    timesteps: list[int] = []

    def on_step_end(pipeline, index, timestep, tensors):
        assert pipeline is pipe and index == len(captured)
        captured.append(tensors["latents"].clone())
        timesteps.append(int(timestep))
        return {}

    size = manifest["size"]
    kwargs = dict(
        prompt=manifest["prompt"],
        negative_prompt=manifest["negative_prompt"],
        image_latents=step["image_latents"],
        flow_condition=step["flow_condition"],
        mode=mode,
        num_frames=size["L"],
        height=size["H"],
        width=size["W"],
        num_inference_steps=manifest["sampling"]["num_inference_steps"],
        guidance_scale=manifest["sampling"]["guidance_scale"],
        eta=manifest["sampling"]["eta"],
        latents=sampling[f"{mode}.initial_latents"],
        output_type="pt",
        callback_on_step_end=on_step_end,
    )
    kwargs.update(overrides)
    frames = pipe(**kwargs).frames
    return frames, captured, timesteps


@pytest.fixture(scope="module")
def official_runs(pipe, official_manifest, goldens):
    """One run per mode through the public call: (video "pt", latents after each step, timesteps)."""
    return {mode: _sample(pipe, official_manifest, goldens, mode) for mode in MODES}


@pytest.mark.parametrize("mode", MODES)
def test_sampling_reproduces_every_intermediate_latent_and_the_video(
    official_runs, official_manifest, goldens, mode
):
    sampling, _ = goldens
    video, latents, timesteps = official_runs[mode]
    steps = official_manifest["sampling"]["num_inference_steps"]
    assert len(latents) == steps
    assert timesteps == [int(t) for t in sampling["timesteps"].tolist()]
    for index, got in enumerate(latents):
        _assert_matches(got, sampling[f"{mode}.latents_after_step_{index}"], 5e-4, f"{mode} step {index}")
    _assert_matches(video, sampling[f"{mode}.video"], 5e-4, f"{mode} video")


def test_modes_use_different_adapters(official_runs):
    # The two adapters differ, so must the runs (a pipeline ignoring `mode` fails the goldens above too).
    object_final, camera_final = official_runs["object"][1][-1], official_runs["camera"][1][-1]
    assert (object_final - camera_final).abs().max() > 1e-2 * object_final.abs().max()


def test_latent_output_is_the_last_step(pipe, official_manifest, goldens):
    sampling, _ = goldens
    last = official_manifest["sampling"]["num_inference_steps"] - 1
    final, trail, _ = _sample(pipe, official_manifest, goldens, "object", output_type="latent")
    assert torch.equal(final, trail[-1])
    assert pipe.scheduler.timesteps.tolist() == [int(t) for t in sampling["timesteps"].tolist()]
    _assert_matches(final, sampling[f"object.latents_after_step_{last}"], 5e-4, "object latent output")


def test_trajectory_list_gives_the_same_result_as_the_flow_condition(
    pipe, official_manifest, goldens, official_dir
):
    """`trajectories=` (the JSON's list of tracks) goes through the official flow condition."""
    sampling, _ = goldens
    tracks = json.loads((official_dir / "trajectories" / "model_step.json").read_text())
    final, _, _ = _sample(
        pipe,
        official_manifest,
        goldens,
        "object",
        flow_condition=None,
        trajectories=tracks,
        output_type="latent",
    )
    last = official_manifest["sampling"]["num_inference_steps"] - 1
    _assert_matches(final, sampling[f"object.latents_after_step_{last}"], 5e-4, "object via trajectories")


def test_prompt_embeds_path_matches_prompt_strings(pipe, official_manifest, goldens):
    """The stored tiny-CLIP embeddings handed over directly give the same sample as the strings."""
    sampling, step = goldens
    final, _, _ = _sample(
        pipe,
        official_manifest,
        goldens,
        "camera",
        prompt=None,
        negative_prompt=None,
        prompt_embeds=step["prompt_embeds"],
        negative_prompt_embeds=step["negative_prompt_embeds"],
        output_type="latent",
    )
    last = official_manifest["sampling"]["num_inference_steps"] - 1
    _assert_matches(final, sampling[f"camera.latents_after_step_{last}"], 5e-4, "camera via prompt_embeds")


def test_encode_prompt_matches_the_stored_embeddings(pipe, official_manifest, goldens):
    _, step = goldens
    device = torch.device("cpu")
    _assert_matches(
        pipe.encode_prompt(official_manifest["prompt"], device), step["prompt_embeds"], 1e-5, "prompt"
    )
    _assert_matches(pipe.encode_prompt("", device), step["empty_prompt_embeds"], 1e-5, "empty prompt")


def test_callback_can_replace_the_latents(pipe, official_manifest, goldens, official_runs):
    """A returned "latents" entry is used for the next step (diffusers' callback convention)."""
    zeroed = []

    def zero_after_first(pipeline, index, timestep, tensors):
        if index == 0:
            zeroed.append(True)
            return {"latents": torch.zeros_like(tensors["latents"])}
        return {}

    baseline = official_runs["object"][1][-1]
    changed, _, _ = _sample(
        pipe,
        official_manifest,
        goldens,
        "object",
        output_type="latent",
        callback_on_step_end=zero_after_first,
    )
    assert zeroed and (changed - baseline).abs().max() > 1e-2
