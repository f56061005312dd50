"""The networks reproduce the released code's numbers (official-tiny goldens) through the public API."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from imageconductor.conditioning import image_condition
from imageconductor.models import (
    ImageConductorControlNetModel,
    ImageConductorUNetModel,
    load_official_components,
    predict_noise,
)

GOLDEN_TOLERANCE = 2e-4  # README: single-step noise predictions, relative to max |golden|
EMBEDDING_TOLERANCE = 1e-5
BATCH_TOLERANCE = 1e-4  # batched vs separate calls: float32 summation order (floor ~2e-5)


def relative_error(value: torch.Tensor, golden: torch.Tensor) -> float:
    return ((value - golden).abs().max() / golden.abs().max()).item()


@pytest.fixture(scope="module")
def components(official_dir: Path):
    weights = official_dir / "official-weights"
    return load_official_components(
        official_dir / "sd15-tiny",
        unet_path=weights / "unet.ckpt",
        image_controlnet_path=weights / "image_controlnet.ckpt",
        flow_controlnet_path=weights / "flow_controlnet.ckpt",
    )


@pytest.fixture(scope="module")
def step(official_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(official_dir / "single_step.safetensors"))


@pytest.fixture(scope="module")
def image_cond(step) -> torch.Tensor:
    return image_condition(step["image_latents"], num_frames=step["x_t"].shape[2])


@pytest.fixture(scope="module")
def small(step) -> dict[str, torch.Tensor]:
    """Cheaper inputs for the batching tests: the golden inputs with half the frames. (Cropping space
    instead leaves 1-pixel feature maps at the deepest level, where GroupNorm makes float32 ill-conditioned.)"""
    frames = max(2, step["x_t"].shape[2] // 2)
    return {
        "x_t": step["x_t"][:, :, :frames],
        "flow": step["flow_condition"][:, :, :frames],
        "image_cond": image_condition(step["image_latents"], num_frames=frames),
    }


def noise(components, sample, timestep, text, image_cond, flow, adapters) -> torch.Tensor:
    with torch.no_grad():
        return predict_noise(
            components.unet,
            components.image_controlnet,
            components.flow_controlnet,
            sample,
            timestep,
            text,
            image_cond,
            flow,
            adapters,
        )


@pytest.mark.parametrize(
    ("prompt_key", "embeds_key"),
    [
        ("prompt", "prompt_embeds"),
        ("negative_prompt", "negative_prompt_embeds"),
        (None, "empty_prompt_embeds"),
    ],
)
def test_text_encoder_reproduces_prompt_embeddings(
    components, step, official_manifest, prompt_key, embeds_key
):
    prompt = official_manifest[prompt_key] if prompt_key else ""
    tokenizer = components.tokenizer
    ids = tokenizer(
        prompt,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        embeds = components.text_encoder(ids)[0]
    assert embeds.shape == step[embeds_key].shape
    assert relative_error(embeds, step[embeds_key]) <= EMBEDDING_TOLERANCE


@pytest.mark.parametrize(
    ("golden_key", "embeds_key", "adapter"),
    [
        ("eps_camera", "prompt_embeds", "camera"),
        ("eps_object", "prompt_embeds", "object"),
        ("eps_no_adapter", "prompt_embeds", "none"),
        ("eps_object_negative", "negative_prompt_embeds", "object"),
    ],
)
def test_single_step_matches_released_code(components, step, image_cond, golden_key, embeds_key, adapter):
    eps = noise(
        components,
        step["x_t"],
        step["timestep"],
        step[embeds_key],
        image_cond,
        step["flow_condition"],
        [adapter],
    )
    error = relative_error(eps, step[golden_key])
    print(f"{golden_key}: max relative error {error:.2e}")
    assert eps.shape == step[golden_key].shape
    assert error <= GOLDEN_TOLERANCE


def test_adapters_change_the_prediction(step):
    # Guard against a test that cannot fail: the goldens for different adapters differ far beyond tolerance.
    for other in ("eps_object", "eps_no_adapter"):
        assert relative_error(step["eps_camera"], step[other]) > 100 * GOLDEN_TOLERANCE


def test_mixed_batch_equals_separate_rows(components, step, small):
    torch.manual_seed(0)
    sample = torch.randn(4, *small["x_t"].shape[1:])
    texts = torch.cat(
        [
            step["prompt_embeds"],
            step["negative_prompt_embeds"],
            step["prompt_embeds"],
            step["empty_prompt_embeds"],
        ]
    )
    flows = torch.cat([small["flow"], 2 * small["flow"], small["flow"], small["flow"]])
    adapters = ["camera", "object", "none", {"camera": 0.5, "object": 0.7}]
    batched = noise(components, sample, step["timestep"], texts, small["image_cond"], flows, adapters)
    for row in range(len(adapters)):
        single = noise(
            components,
            sample[row : row + 1],
            step["timestep"],
            texts[row : row + 1],
            small["image_cond"],
            flows[row : row + 1],
            [adapters[row]],
        )
        assert relative_error(batched[row : row + 1], single) <= BATCH_TOLERANCE, f"row {row}"


def reference_noise(components, sample, timestep, text, image_cond, flow, select_adapters) -> torch.Tensor:
    """Direct evaluation with diffusers' own adapter switching (no dedup, no per-row selection)."""
    frames = sample.shape[2]
    text = text.repeat_interleave(frames, dim=0)
    with torch.no_grad():
        image_down, image_mid = components.image_controlnet(
            sample,
            timestep,
            encoder_hidden_states=text,
            controlnet_cond=image_cond[:, :-1],
            conditioning_mask=image_cond[:, -1:],
            return_dict=False,
        )
        select_adapters(components.flow_controlnet)
        flow_down, flow_mid = components.flow_controlnet(
            sample, timestep, encoder_hidden_states=text, controlnet_cond=flow, return_dict=False
        )
        return components.unet(
            sample,
            timestep,
            encoder_hidden_states=text,
            down_block_additional_residuals=[a + b for a, b in zip(image_down, flow_down, strict=True)],
            mid_block_additional_residual=image_mid + flow_mid,
            return_dict=False,
        )[0]


def test_blended_adapters_match_diffusers_set_adapters(components, step, small):
    blend = {"camera": 0.5, "object": 0.7}
    ours = noise(
        components,
        small["x_t"],
        step["timestep"],
        step["prompt_embeds"],
        small["image_cond"],
        small["flow"],
        [blend],
    )
    flow_net = components.flow_controlnet
    try:
        reference = reference_noise(
            components,
            small["x_t"],
            step["timestep"],
            step["prompt_embeds"],
            small["image_cond"],
            small["flow"],
            lambda net: net.set_adapters(list(blend), weights=list(blend.values())),
        )
    finally:
        flow_net.set_adapters(["camera", "object"], weights=[1.0, 1.0])
        flow_net.requires_grad_(False)
    assert relative_error(ours, reference) <= BATCH_TOLERANCE
    camera_only = noise(
        components,
        small["x_t"],
        step["timestep"],
        step["prompt_embeds"],
        small["image_cond"],
        small["flow"],
        "camera",
    )
    assert relative_error(ours, camera_only) > 100 * BATCH_TOLERANCE


def test_shared_controlnet_work_and_one_unet_call(components, step, small):
    """Camera-free guidance rows [∅/none, c/none, c/object]: 2 image rows, 3 flow rows, 1 UNet call."""
    calls: list[tuple[str, int]] = []

    def record(name):
        return lambda module, args, kwargs: calls.append(
            (name, (args[0] if args else kwargs["sample"]).shape[0])
        )

    handles = [
        components.image_controlnet.register_forward_pre_hook(record("image"), with_kwargs=True),
        components.flow_controlnet.register_forward_pre_hook(record("flow"), with_kwargs=True),
        components.unet.register_forward_pre_hook(record("unet"), with_kwargs=True),
    ]
    try:
        texts = torch.cat([step["empty_prompt_embeds"], step["prompt_embeds"], step["prompt_embeds"]])
        sample = small["x_t"].repeat(3, 1, 1, 1, 1)
        flows = small["flow"].repeat(3, 1, 1, 1, 1)  # equal by value, not by identity
        noise(
            components,
            sample,
            step["timestep"],
            texts,
            small["image_cond"],
            flows,
            ["none", "none", "object"],
        )
        assert calls == [("image", 2), ("flow", 3), ("unet", 3)]
        calls.clear()
        noise(
            components,
            sample[:2],
            step["timestep"],
            texts[1:],
            small["image_cond"],
            flows[:2],
            ["object", "object"],
        )
        assert calls == [("image", 1), ("flow", 1), ("unet", 2)]
    finally:
        for handle in handles:
            handle.remove()


def test_adapter_state_and_grads_are_restored(components, step, small):
    flow_net = components.flow_controlnet
    lora = [param for name, param in flow_net.named_parameters() if ".lora_" in name]
    active_before = flow_net.active_adapters()
    lora[0].requires_grad_(True)
    try:
        noise(
            components,
            small["x_t"].repeat(2, 1, 1, 1, 1),
            step["timestep"],
            step["prompt_embeds"],
            small["image_cond"],
            small["flow"],
            ["camera", {"camera": 0.3, "object": 0.2}],
        )
        assert flow_net.active_adapters() == active_before
        assert lora[0].requires_grad and not any(param.requires_grad for param in lora[1:])
    finally:
        lora[0].requires_grad_(False)


def test_save_pretrained_round_trip(components, step, small, tmp_path):
    loaded = {}
    for name, model_class in (
        ("unet", ImageConductorUNetModel),
        ("image_controlnet", ImageConductorControlNetModel),
        ("flow_controlnet", ImageConductorControlNetModel),
    ):
        getattr(components, name).save_pretrained(tmp_path / name)
        loaded[name] = model_class.from_pretrained(tmp_path / name)
    flow_dir = tmp_path / "flow_controlnet"
    assert (flow_dir / "diffusion_pytorch_model.safetensors").is_file()
    for adapter in ("camera", "object"):
        assert (flow_dir / "adapters" / adapter / "pytorch_lora_weights.safetensors").is_file()
    assert sorted(loaded["flow_controlnet"].peft_config) == ["camera", "object"]

    sample = small["x_t"].repeat(2, 1, 1, 1, 1)
    texts = torch.cat([step["prompt_embeds"], step["negative_prompt_embeds"]])
    adapters = ["camera", "object"]
    args = (sample, step["timestep"], texts, small["image_cond"], small["flow"], adapters)
    original = noise(components, *args)
    with torch.no_grad():
        reloaded = predict_noise(loaded["unet"], loaded["image_controlnet"], loaded["flow_controlnet"], *args)
    torch.testing.assert_close(reloaded, original, rtol=0, atol=0)
