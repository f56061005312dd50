"""Camera-free guidance (paper Eq. 5) against a direct, unbatched evaluation on the official-tiny models."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from imageconductor.conditioning import image_condition
from imageconductor.models import predict_noise


@pytest.fixture(scope="module")
def pipe(official_pipeline):
    return official_pipeline


@pytest.fixture(scope="module")
def inputs(official_sampling_inputs):
    return official_sampling_inputs


@pytest.fixture(scope="module")
def run(pipe, inputs):
    """``run(**overrides)`` -> latents after every step (captured with the step callback), cached."""
    cache: dict[tuple, list[torch.Tensor]] = {}

    def sample(**overrides):
        key = tuple(sorted(overrides.items()))
        if key not in cache:
            trail: list[torch.Tensor] = []

            def capture(pipeline, index, timestep, tensors):
                trail.append(tensors["latents"].clone())
                return {}

            kwargs = {**inputs, "output_type": "latent", "callback_on_step_end": capture, **overrides}
            final = pipe(**kwargs).frames
            assert torch.equal(final, trail[-1])
            cache[key] = trail
        return cache[key]

    return sample


def _eq5_unbatched(pipe, inputs, negative_text, cfg_scale, traj_scale, traj_adapter="object"):
    """Eq. 5 evaluated literally: three separate single-row noise predictions per step."""
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(inputs["num_inference_steps"])
    device = torch.device("cpu")
    uncond_text = pipe.encode_prompt(negative_text, device)
    cond_text = pipe.encode_prompt(inputs["prompt"], device)
    image_cond = image_condition(inputs["image_latents"], inputs["num_frames"])
    flow = inputs["flow_condition"]
    models = (pipe.unet, pipe.image_controlnet, pipe.flow_controlnet)
    latents = inputs["latents"].clone()
    trail = []
    with torch.no_grad():
        for timestep in scheduler.timesteps:
            eps_base_uncond = predict_noise(
                *models, latents, timestep, uncond_text, image_cond, flow, ["none"]
            )
            eps_base_cond = predict_noise(*models, latents, timestep, cond_text, image_cond, flow, ["none"])
            eps_traj_cond = predict_noise(
                *models, latents, timestep, cond_text, image_cond, flow, [traj_adapter]
            )
            eps = (
                eps_base_uncond
                + cfg_scale * (eps_base_cond - eps_base_uncond)
                + traj_scale * (eps_traj_cond - eps_base_cond)
            )
            latents = scheduler.step(eps, timestep, latents, eta=0.0).prev_sample
            trail.append(latents)
    return trail


def _close(got, want, tol=1e-4):
    error = (got - want).abs().max().item()
    assert error <= tol * want.abs().max().item(), f"max|diff| {error:.3g}"


def test_batched_camera_free_guidance_equals_unbatched_eq5(pipe, inputs, run):
    got = run(camera_free_guidance=1.6, mode="object")
    # No negative prompt: ∅ is the empty text, as in the paper.
    want = _eq5_unbatched(pipe, inputs, "", inputs["guidance_scale"], 1.6)
    assert len(got) == len(want) == inputs["num_inference_steps"]
    for step_got, step_want in zip(got, want, strict=True):
        _close(step_got, step_want)


def test_camera_free_guidance_uses_the_negative_prompt_and_the_mode_adapter(pipe, inputs, run):
    negative = "blurry, low quality"
    got = run(camera_free_guidance=1.4, mode="camera", negative_prompt=negative)
    want = _eq5_unbatched(pipe, inputs, negative, inputs["guidance_scale"], 1.4, traj_adapter="camera")
    for step_got, step_want in zip(got, want, strict=True):
        _close(step_got, step_want)


def test_lambda_traj_changes_the_output(run):
    low = run(camera_free_guidance=0.0, mode="object")[-1]
    high = run(camera_free_guidance=1.6, mode="object")[-1]
    assert (high - low).abs().max() > 1e-2 * low.abs().max()


def test_lambda_traj_zero_is_plain_cfg_without_lora(run):
    """With λ_traj = 0 the trajectory row drops out: plain CFG with the adapter-free ControlNet."""
    free = run(camera_free_guidance=0.0, mode="object")[-1]
    plain = run(mode="none")[-1]
    _close(free, plain)
    with_lora = run(mode="object")[-1]
    assert (with_lora - plain).abs().max() > 1e-2 * plain.abs().max()
