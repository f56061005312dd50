"""The memory estimate: parameter counts from configs, how it scales with the request, available memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from imageconductor.pipelines.memory import (
    available_memory,
    estimate_request_memory,
    official_parameter_counts,
)

NETWORKS = ("unet", "image_controlnet", "flow_controlnet", "vae", "text_encoder")


def test_parameter_counts_from_configs_match_the_loaded_networks(official_dir, official_pipeline):
    counts = official_parameter_counts(official_dir / "sd15-tiny")
    for name in NETWORKS:
        model = getattr(official_pipeline, name)
        loaded = sum(
            parameter.numel()
            for key, parameter in model.named_parameters()
            if "lora_" not in key  # the flow ControlNet's adapters are not counted
        )
        assert counts[name] == loaded, name


def test_estimate_scales_with_the_request(official_dir, official_pipeline):
    counts = official_parameter_counts(official_dir / "sd15-tiny")
    unet, vae = official_pipeline.unet.config, official_pipeline.vae.config

    def estimate(**kwargs):
        request = {"num_frames": 16, "height": 256, "width": 384, **kwargs}
        return estimate_request_memory(counts, unet, vae, **request)

    base = estimate()
    assert base.weights == 4 * sum(counts.values())
    assert estimate(dtype=torch.bfloat16).weights * 2 == base.weights
    assert estimate(dtype=torch.bfloat16).activations * 2 == base.activations
    assert estimate(offload=True).weights == 4 * max(counts.values())
    # A step's working set grows with frames x guidance rows; decoding with the chunk.
    assert estimate(num_frames=32).activations == 2 * base.activations
    assert estimate(guidance_rows=3).activations * 2 == 3 * base.activations
    decode_bound = estimate(num_frames=2, guidance_rows=1, decode_chunk_size=16)
    assert (
        decode_bound.activations
        == estimate(num_frames=2, guidance_rows=1, decode_chunk_size=8).activations * 2
    )
    assert base.total == base.weights + base.activations
    assert "GiB" in base.describe()


def test_available_memory_without_psutil_reads_meminfo(monkeypatch):
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        pytest.skip("no /proc/meminfo")
    monkeypatch.setitem(sys.modules, "psutil", None)
    value = available_memory("cpu")
    expected = next(
        int(line.split()[1]) * 1024
        for line in meminfo.read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    assert abs(value - expected) < 256 * 1024**2  # other processes allocate between the two reads
    assert value > 0
