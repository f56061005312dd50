"""Inference options: bfloat16 against float32 on the fixture, chunked VAE decoding, SDPA attention."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from official_tiny import load_official_tiny

#: Stated tolerance of bfloat16 on the fixture: max |bf16 - fp32| / max |fp32| of the two-step latents
#: (measured 6.4e-2 with `python benchmarks/dtype_deviation.py`).
BFLOAT16_TOLERANCE = 0.1


@pytest.fixture(scope="module")
def bfloat16_pipeline(official_dir):
    return load_official_tiny(torch.bfloat16, official_dir)


def test_bfloat16_stays_within_the_stated_tolerance(
    bfloat16_pipeline, official_pipeline, official_sampling_inputs
):
    for model in (bfloat16_pipeline.unet, bfloat16_pipeline.flow_controlnet, bfloat16_pipeline.text_encoder):
        assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    ours = bfloat16_pipeline(**official_sampling_inputs, output_type="latent").frames
    reference = official_pipeline(**official_sampling_inputs, output_type="latent").frames
    assert ours.dtype == torch.bfloat16 and torch.isfinite(ours.float()).all()
    deviation = float((ours.float() - reference).abs().max() / reference.abs().max())
    assert 0 < deviation <= BFLOAT16_TOLERANCE, deviation


def test_chunked_decoding_equals_frame_by_frame(official_pipeline):
    torch.manual_seed(0)
    latents = torch.randn(2, 4, 5, 8, 12)
    frame_by_frame = official_pipeline.decode_latents(latents)
    for chunk in (2, 10, 64):
        torch.testing.assert_close(
            official_pipeline.decode_latents(latents, chunk), frame_by_frame, rtol=1e-5, atol=1e-5
        )
    assert frame_by_frame.shape == (2, 3, 5, 64, 96)
    with pytest.raises(ValueError, match="decode_chunk_size"):
        official_pipeline.decode_latents(latents, 0)


def test_attention_runs_through_pytorch_sdpa(official_pipeline):
    for name in ("unet", "image_controlnet", "flow_controlnet", "vae"):
        processors = getattr(official_pipeline, name).attn_processors
        assert processors, name
        assert all(isinstance(processor, AttnProcessor2_0) for processor in processors.values()), name


@pytest.mark.slow
def test_compiled_networks_sample_what_the_eager_ones_do(official_dir, official_sampling_inputs):
    """torch.compile end to end (about a minute and a half of compiling on 2 cores: `pytest -m slow`)."""
    eager = load_official_tiny(fixture=official_dir)
    compiled = load_official_tiny(fixture=official_dir)
    compiled.compile_networks(dynamic=False)
    reference = eager(**official_sampling_inputs, output_type="latent").frames
    ours = compiled(**official_sampling_inputs, output_type="latent").frames
    deviation = float((ours - reference).abs().max() / reference.abs().max())
    assert deviation <= 5e-4, deviation
