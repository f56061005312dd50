"""The motion ControlNet's adapters folded into its weights while sampling (imageconductor.models.adapter_fusion)."""

from __future__ import annotations

import pytest
import torch

import imageconductor.pipelines.image_conductor as image_conductor_module
from imageconductor.models import predict_noise
from imageconductor.models.adapter_fusion import (
    FOLD_MIN_ADAPTER_SHARE,
    adapter_fusion,
    adapter_share,
    fusion_active,
)
from imageconductor.models.lora import adapters_weighted, tuner_layers


def _lora_calls(model: torch.nn.Module) -> tuple[list[int], list]:
    """A counter of calls into ``model``'s LoRA ``A`` matrices, and the hook handles to remove."""
    calls: list[int] = []
    handles = [
        module.register_forward_hook(lambda *_: calls.append(1))
        for layer in tuner_layers(model)
        for module in layer.lora_A.values()
    ]
    return calls, handles


def _step_inputs(pipe, batch: int = 3) -> dict:
    generator = torch.Generator().manual_seed(5)
    frames, h, w = 4, 8, 12
    flow = torch.randn(1, 2, frames, 8 * h, 8 * w, generator=generator)
    image = torch.zeros(1, 5, frames, h, w)
    image[:, :4, 0] = torch.randn(1, 4, h, w, generator=generator)
    image[:, 4, 0] = 1
    return {
        "sample": torch.randn(batch, 4, frames, h, w, generator=generator),
        "timestep": torch.tensor(500),
        "encoder_hidden_states": torch.randn(
            batch, 77, pipe.text_encoder.config.hidden_size, generator=generator
        ),
        "image_condition": image.expand(batch, -1, -1, -1, -1),
        "flow_condition": flow.expand(batch, -1, -1, -1, -1),
    }


def _predict(pipe, inputs: dict, adapters) -> torch.Tensor:
    with torch.no_grad():
        return predict_noise(
            pipe.unet, pipe.image_controlnet, pipe.flow_controlnet, adapters=adapters, **inputs
        )


@pytest.mark.parametrize(
    "adapters",
    [
        ["object", "object", "object"],
        ["camera"] * 3,
        [{"camera": 0.5, "object": 1.0}] * 3,
        ["none", "none", "object"],  # camera-free guidance's rows
        ["none", "camera", "object"],
    ],
    ids=["object", "camera", "blend", "camera-free", "mixed"],
)
def test_folded_adapters_predict_what_the_lora_layers_do(official_pipeline, adapters):
    pipe = official_pipeline
    flow_controlnet = pipe.flow_controlnet
    inputs = _step_inputs(pipe)
    weights_before = {
        name: param for name, param in flow_controlnet.named_parameters() if "lora_" not in name
    }
    copies_before = {name: param.detach().clone() for name, param in weights_before.items()}

    calls, handles = _lora_calls(flow_controlnet)
    try:
        unfolded = _predict(pipe, inputs, adapters)
        assert calls, "without fusion the LoRA layers run"
        calls.clear()
        with adapter_fusion(flow_controlnet):
            assert fusion_active(flow_controlnet) is False  # gradients are on outside no_grad
            folded = _predict(pipe, inputs, adapters)
            again = _predict(pipe, inputs, adapters)
        assert not calls, "folded adapters run no LoRA layer"
    finally:
        for handle in handles:
            handle.remove()

    scale = float(unfolded.abs().max())
    assert float((folded - unfolded).abs().max()) <= 1e-5 * scale
    assert float((folded - unfolded).abs().max()) > 0  # rounded differently: really the other path
    assert torch.equal(again, folded)  # the cached folded weights are the ones built on first use
    # The original weight tensors are back, unchanged (swapped, not subtracted).
    weights_after = {name: param for name, param in flow_controlnet.named_parameters() if "lora_" not in name}
    assert weights_after.keys() == weights_before.keys()
    for name, param in weights_after.items():
        assert param is weights_before[name], name
        assert torch.equal(param, copies_before[name]), name
    assert not hasattr(flow_controlnet, "_imageconductor_fused_weights") or (
        flow_controlnet._imageconductor_fused_weights is None
    )


def test_adapter_state_is_restored_after_a_folded_call(official_pipeline):
    flow_controlnet = official_pipeline.flow_controlnet
    layers = tuner_layers(flow_controlnet)
    state = [(list(layer.active_adapters), layer.disable_adapters) for layer in layers]
    grads = [param.requires_grad for param in flow_controlnet.parameters()]
    with (
        adapter_fusion(flow_controlnet),
        torch.no_grad(),
        adapters_weighted(flow_controlnet, {"object": 1.0}),
    ):
        assert all(layer.disable_adapters for layer in layers)  # the folded weights carry the adapter
    assert [(list(layer.active_adapters), layer.disable_adapters) for layer in layers] == state
    assert [param.requires_grad for param in flow_controlnet.parameters()] == grads


def test_training_and_gradients_keep_the_lora_layers(official_pipeline):
    """In train mode, or with gradients on, nothing is folded: the adapters must stay trainable."""
    unet, flow_controlnet = official_pipeline.unet, official_pipeline.flow_controlnet
    inputs = {**_step_inputs(official_pipeline, batch=1), "image_condition": None}
    calls, handles = _lora_calls(flow_controlnet)
    lora_b = [param for name, param in flow_controlnet.named_parameters() if ".lora_B.object." in name]
    try:
        with adapter_fusion(flow_controlnet):
            flow_controlnet.train()
            try:
                with torch.no_grad():
                    assert not fusion_active(flow_controlnet)
                    predict_noise(unet, None, flow_controlnet, adapters="object", **inputs)
            finally:
                flow_controlnet.eval()
            assert calls
            calls.clear()

            assert not fusion_active(flow_controlnet)  # gradients on
            for param in lora_b:
                param.requires_grad_(True)
                param.grad = None
            predict_noise(unet, None, flow_controlnet, adapters="object", **inputs).square().mean().backward()
            assert calls
            assert any(param.grad is not None and param.grad.abs().sum() > 0 for param in lora_b)
    finally:
        for handle in handles:
            handle.remove()
        for param in lora_b:
            param.requires_grad_(False)
            param.grad = None
        unet.zero_grad(set_to_none=True)


def test_adapter_share_counts_the_largest_adapter_against_the_weights_it_adapts():
    from peft import LoraConfig, inject_adapter_in_model

    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 10))  # the second: not adapted
    for name, rank in (("small", 2), ("large", 4)):
        model = inject_adapter_in_model(LoraConfig(r=rank, target_modules=["0"]), model, adapter_name=name)
    assert adapter_share(model) == pytest.approx((4 * 10 + 10 * 4) / 100)
    assert adapter_share(torch.nn.Linear(3, 3)) == 0.0


def test_the_pipeline_folds_only_where_it_pays_and_is_safe(
    official_pipeline, official_sampling_inputs, monkeypatch
):
    pipe = official_pipeline
    flow_controlnet = pipe.flow_controlnet
    assert adapter_share(flow_controlnet) >= FOLD_MIN_ADAPTER_SHARE  # rank 8 on 32-64 channels
    inputs = dict(official_sampling_inputs, num_inference_steps=1, output_type="latent")
    calls, handles = _lora_calls(flow_controlnet)
    try:
        assert pipe.fuse_motion_adapters is None and pipe.folds_motion_adapters
        folded = pipe(**inputs).frames
        assert not calls
        pipe.fuse_motion_adapters = False
        unfolded = pipe(**inputs).frames
        assert calls
        calls.clear()
        pipe.fuse_motion_adapters = None  # adapters a small share of the work: the copy does not pay
        monkeypatch.setattr(image_conductor_module, "FOLD_MIN_ADAPTER_SHARE", 0.5)
        assert not pipe.folds_motion_adapters
        monkeypatch.undo()
        flow_controlnet.compile()  # marks it compiled; nothing is compiled before a call
        try:
            assert not pipe.folds_motion_adapters
        finally:
            flow_controlnet._compiled_call_impl = None
        assert pipe.folds_motion_adapters
        pipe.fuse_motion_adapters = True
        assert pipe.folds_motion_adapters
        flow_controlnet._hf_hook = object()  # what accelerate's offload hooks leave on a module
        try:
            assert not pipe.folds_motion_adapters
            offloaded = pipe(**inputs).frames
        finally:
            del flow_controlnet._hf_hook
        assert calls
    finally:
        pipe.fuse_motion_adapters = None
        for handle in handles:
            handle.remove()
    scale = float(unfolded.abs().max())
    assert float((folded - unfolded).abs().max()) <= 1e-5 * scale
    assert torch.equal(offloaded, unfolded)
