"""Small pieces of the model code: conditions, per-frame norm, adapter choices, row grouping, LoRA hooks."""

from __future__ import annotations

import warnings

import pytest
import torch
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from peft import LoraConfig
from torch import nn

from imageconductor.conditioning import image_condition, pixel_unshuffle_video
from imageconductor.models import PerFrameGroupNorm, adapters_per_row, adapters_weighted
from imageconductor.models.lora import AdapterSupportMixin, install_adapter_hooks, lora_config_for_modules
from imageconductor.models.motion_norm import use_per_frame_motion_norms
from imageconductor.models.noise import BASE_ADAPTER, canonical_adapter, unique_rows


def test_image_condition_layout():
    latents = torch.randn(2, 4, 1, 3, 5)
    condition = image_condition(latents, num_frames=6)
    assert condition.shape == (2, 5, 6, 3, 5)
    torch.testing.assert_close(condition[:, :4, 0], latents[:, :, 0])
    assert condition[:, :4, 1:].abs().sum() == 0
    assert torch.all(condition[:, 4, 0] == 1) and condition[:, 4, 1:].abs().sum() == 0
    torch.testing.assert_close(image_condition(latents[:, :, 0], 6), condition)


@pytest.mark.parametrize("bad", [torch.zeros(1, 4, 2, 3, 3), torch.zeros(4, 3, 3)])
def test_image_condition_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="image_latents"):
        image_condition(bad, num_frames=4)


def test_pixel_unshuffle_video_matches_torch_per_frame():
    video = torch.randn(2, 2, 3, 16, 24)
    folded = pixel_unshuffle_video(video, 8)
    assert folded.shape == (2, 128, 3, 2, 3)
    for frame in range(3):
        torch.testing.assert_close(folded[:, :, frame], nn.PixelUnshuffle(8)(video[:, :, frame]))
    with pytest.raises(ValueError, match="multiples"):
        pixel_unshuffle_video(video, 5)


def test_per_frame_group_norm_normalises_each_frame():
    torch.manual_seed(0)
    norm = nn.GroupNorm(4, 8, eps=1e-6)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    video = torch.randn(2, 8, 5, 3, 4) * torch.linspace(0.5, 4.0, 5).view(1, 1, 5, 1, 1)
    pooled = norm(video)
    norm.__class__ = PerFrameGroupNorm
    per_frame = norm(video)
    for frame in range(5):
        torch.testing.assert_close(per_frame[:, :, frame], nn.GroupNorm.forward(norm, video[:, :, frame]))
    assert (per_frame - pooled).abs().max() > 0.1  # the two really differ on frames of different scale
    torch.testing.assert_close(norm(video[:, :, 0]), nn.GroupNorm.forward(norm, video[:, :, 0]))


def test_motion_modules_get_per_frame_norm_with_same_parameter_names():
    block = nn.ModuleDict(
        {
            "motion": AnimateDiffTransformer3D(
                num_attention_heads=2, attention_head_dim=4, in_channels=8, norm_num_groups=4
            )
        }
    )
    names = [name for name, _ in block.named_parameters()]
    assert use_per_frame_motion_norms(block) == 1
    assert isinstance(block["motion"].norm, PerFrameGroupNorm)
    assert [name for name, _ in block.named_parameters()] == names


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("none", BASE_ADAPTER),
        (None, BASE_ADAPTER),
        ({}, BASE_ADAPTER),
        ({"camera": 0.0}, BASE_ADAPTER),
        ("object", "object"),
        ({"object": 1.0, "camera": 0}, "object"),
        ({"object": 0.5, "camera": 0.25}, (("camera", 0.25), ("object", 0.5))),
    ],
)
def test_canonical_adapter(spec, expected):
    assert canonical_adapter(spec) == expected


@pytest.mark.parametrize("spec", [3, {"camera": float("nan")}, {1: 1.0}])
def test_canonical_adapter_rejects_bad_choices(spec):
    with pytest.raises((TypeError, ValueError)):
        canonical_adapter(spec)


def test_unique_rows_by_identity_and_value():
    base = torch.randn(1, 3, 4)
    expanded = base.expand(4, 3, 4)
    copied = torch.cat([base, base.clone(), base + 1, base])
    reps, groups = unique_rows([expanded, copied], ["a", "a", "a", "b"])
    assert reps == [0, 2, 3] and groups == [0, 0, 1, 2]


class _Tiny(AdapterSupportMixin, nn.Module):
    """A minimal model that calls a LoRA-wrapped layer with ``input=`` like diffusers' motion modules."""

    def __init__(self) -> None:
        super().__init__()
        self.proj_in = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, 4)  # each batch row becomes 3 layer rows, batch-major
        return self.proj_in(input=rows).reshape(x.shape)


def _tiny_with_adapters() -> _Tiny:
    from peft import inject_adapter_in_model

    torch.manual_seed(0)
    model = _Tiny()
    for name in ("camera", "object"):
        config = LoraConfig(r=2, lora_alpha=2, target_modules=["proj_in"], init_lora_weights=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            inject_adapter_in_model(config, model, name)
    model._hf_peft_config_loaded = True
    install_adapter_hooks(model)
    return model


def test_per_row_adapters_expand_to_layer_rows_and_match_single_adapter_runs():
    model = _tiny_with_adapters()
    x = torch.randn(3, 3, 4)
    with adapters_per_row(model, ["camera", BASE_ADAPTER, "object"]):
        mixed = model(x)
    expected = []
    for row, weights in enumerate(({"camera": 1.0}, {}, {"object": 1.0})):
        with adapters_weighted(model, weights):
            expected.append(model(x[row : row + 1]))
    torch.testing.assert_close(mixed, torch.cat(expected))
    assert not torch.allclose(expected[0], expected[2])


def test_unknown_adapter_is_named():
    model = _tiny_with_adapters()
    with pytest.raises(ValueError, match="sky"), adapters_weighted(model, {"sky": 1.0}):
        pass


def test_lora_config_targets_exactly_the_given_modules():
    config = lora_config_for_modules({"a.proj_in": 4, "b.proj_in": 4, "conv_in": 2})
    assert config.r == 4 and config.lora_alpha == 4
    import re

    assert re.fullmatch(config.target_modules, "a.proj_in")
    assert not re.fullmatch(config.target_modules, "c.a.proj_in")
    assert not re.fullmatch(config.target_modules, "x.conv_in")
    assert list(config.rank_pattern.values()) == [2] and list(config.alpha_pattern.values()) == [2.0]


def test_per_row_adapters_work_on_a_deep_copy():
    import copy

    model = _tiny_with_adapters()
    clone = copy.deepcopy(model)
    x = torch.randn(2, 3, 4)
    with adapters_per_row(model, ["camera", "object"]):
        expected = model(x)
    with adapters_per_row(clone, ["camera", "object"]):
        torch.testing.assert_close(clone(x), expected)
