"""Pipeline loading, saving, first-frame handling, output types and input errors (official-tiny models)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from imageconductor.pipelines.image_conductor import ImageConductorPipeline, prepare_first_frame


def _official_paths(official_dir):
    weights = official_dir / "official-weights"
    return {
        "pretrained_model_path": official_dir / "sd15-tiny",
        "unet_path": weights / "unet.ckpt",
        "image_controlnet_path": weights / "image_controlnet.ckpt",
        "flow_controlnet_path": weights / "flow_controlnet.ckpt",
    }


@pytest.fixture(scope="module")
def pipe(official_pipeline):
    return official_pipeline


@pytest.fixture(scope="module")
def call_kwargs(official_dir, official_manifest):
    step = load_file(official_dir / "single_step.safetensors")
    size = official_manifest["size"]
    latents = torch.randn(
        1, 4, size["L"], size["H"] // 8, size["W"] // 8, generator=torch.Generator().manual_seed(5)
    )
    return {
        "prompt": official_manifest["prompt"],
        "image_latents": step["image_latents"],
        "flow_condition": step["flow_condition"],
        "latents": latents,
        "num_inference_steps": 1,
    }


def test_from_official_names_every_missing_file(official_dir, tmp_path):
    paths = _official_paths(official_dir)
    paths["unet_path"] = tmp_path / "nope" / "unet.ckpt"
    paths["flow_controlnet_path"] = tmp_path / "flow.ckpt"
    with pytest.raises(FileNotFoundError) as info:
        ImageConductorPipeline.from_official(**paths)
    message = str(info.value)
    assert "unet_path" in message and str(paths["unet_path"]) in message
    assert "flow_controlnet_path" in message and str(paths["flow_controlnet_path"]) in message
    assert "image_controlnet_path" not in message


def test_save_pretrained_round_trip_gives_the_same_video(pipe, call_kwargs, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    files = {path.name for path in (tmp_path / "saved").rglob("*")}
    assert "model_index.json" in files
    assert not any(name.endswith((".bin", ".ckpt", ".pt")) for name in files), files
    assert any(name.endswith(".safetensors") for name in files)
    reloaded = ImageConductorPipeline.from_pretrained(tmp_path / "saved")
    reloaded.set_progress_bar_config(disable=True)
    # A blend of both adapters: a lost or altered adapter, text encoder, VAE or scheduler changes this.
    mode = {"camera": 1.0, "object": 0.5}
    before = pipe(**call_kwargs, mode=mode, output_type="pt").frames
    after = reloaded(**call_kwargs, mode=mode, output_type="pt").frames
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    public = {key: value for key, value in pipe.scheduler.config.items() if not key.startswith("_")}
    assert {key: reloaded.scheduler.config[key] for key in public} == public


def test_first_frame_is_centre_cropped_to_the_aspect_ratio_and_scaled_to_minus_one_one():
    # A 40x20 image whose left and right quarters are black and whose middle half is white: cropping
    # it to a square keeps only the white middle.
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 10:30] = 255
    tensor = prepare_first_frame(PIL.Image.fromarray(pixels), height=16, width=16)
    assert tensor.shape == (1, 3, 16, 16)
    torch.testing.assert_close(tensor, torch.ones_like(tensor))
    # Float input takes the same crop.
    as_float = prepare_first_frame(pixels.astype(np.float32) / 255, height=16, width=16)
    torch.testing.assert_close(as_float, torch.ones_like(as_float))
    # A wide target keeps the full width and maps black to -1.
    wide = prepare_first_frame(PIL.Image.fromarray(pixels), height=8, width=16)
    assert wide[..., :2].max() == -1.0 and wide[..., 6:10].min() == 1.0


def test_image_input_equals_handing_over_its_vae_latents(pipe, call_kwargs, official_manifest):
    size = official_manifest["size"]
    rng = np.random.default_rng(0)
    image = PIL.Image.fromarray(rng.integers(0, 256, (size["H"] * 2, size["W"] * 2, 3), dtype=np.uint8))
    pixels = prepare_first_frame(image, size["H"], size["W"])
    with torch.no_grad():
        latent_dist = pipe.vae.encode(pixels).latent_dist
    expected = latent_dist.sample(torch.Generator().manual_seed(3)) * pipe.vae.config.scaling_factor
    torch.testing.assert_close(
        pipe.encode_image(image, size["H"], size["W"], generator=torch.Generator().manual_seed(3))[:, :, 0],
        expected,
    )
    kwargs = {k: v for k, v in call_kwargs.items() if k != "image_latents"}
    # The pipeline draws the first-frame latents with the generator before anything else.
    via_image = pipe(**kwargs, image=image, generator=torch.Generator().manual_seed(3), output_type="latent")
    via_latents = pipe(**kwargs, image_latents=expected[:, :, None], output_type="latent")
    torch.testing.assert_close(via_image.frames, via_latents.frames, rtol=0, atol=1e-6)


def test_output_types_agree(pipe, call_kwargs):
    pt = pipe(**call_kwargs, output_type="pt").frames
    np_frames = pipe(**call_kwargs, output_type="np").frames
    pil = pipe(**call_kwargs, output_type="pil").frames
    batch, channels, num_frames, height, width = pt.shape
    assert channels == 3 and pt.min() >= 0 and pt.max() <= 1
    np.testing.assert_allclose(np_frames, pt.permute(0, 2, 3, 4, 1).numpy(), atol=1e-6)
    assert len(pil) == batch and len(pil[0]) == num_frames and pil[0][0].size == (width, height)
    np.testing.assert_array_equal(np.asarray(pil[0][1]), np.round(np_frames[0, 1] * 255).astype(np.uint8))
    latents = pipe(**call_kwargs, output_type="latent", return_dict=False)[0]
    torch.testing.assert_close(pipe.decode_latents(latents), pt, rtol=0, atol=1e-6)


def test_generator_drives_the_initial_noise(pipe, call_kwargs):
    kwargs = {k: v for k, v in call_kwargs.items() if k != "latents"}
    first = pipe(**kwargs, generator=torch.Generator().manual_seed(11), output_type="latent").frames
    again = pipe(**kwargs, generator=torch.Generator().manual_seed(11), output_type="latent").frames
    other = pipe(**kwargs, generator=torch.Generator().manual_seed(12), output_type="latent").frames
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-2


def test_batch_of_prompts_matches_single_calls(pipe, call_kwargs, official_manifest):
    prompts = [official_manifest["prompt"], "a different prompt"]
    latents = call_kwargs["latents"].repeat(2, 1, 1, 1, 1)
    batched = pipe(**{**call_kwargs, "prompt": prompts, "latents": latents}, output_type="latent").frames
    for index, prompt in enumerate(prompts):
        single = pipe(**{**call_kwargs, "prompt": prompt}, output_type="latent").frames
        error = (batched[index : index + 1] - single).abs().max()
        assert error <= 1e-5 * single.abs().max(), f"prompt {index}: max|diff| {error:.3g}"


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"prompt": None}, ValueError, "exactly one of `prompt`"),
        ({"image": np.zeros((8, 8, 3), np.uint8)}, ValueError, "exactly one of `image`"),
        ({"trajectories": [[[1.0, 2.0]]]}, ValueError, "exactly one of `trajectories`"),
        ({"mode": "sideways"}, ValueError, "mode must be"),
        ({"output_type": "gif"}, ValueError, "output_type"),
        ({"height": 60}, ValueError, "multiples of 8"),
        ({"latents": torch.zeros(1, 4, 3, 2, 2)}, ValueError, "latents must be shaped"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, ValueError, "noise"),
        ({"camera_free_guidance": 1.5, "mode": "none"}, ValueError, "not 'none'"),
    ],
)
def test_bad_inputs_are_named(pipe, call_kwargs, overrides, error, message):
    with pytest.raises(error, match=message):
        pipe(**{**call_kwargs, "output_type": "latent", **overrides})


def test_flow_condition_of_the_wrong_size_is_rejected(pipe, call_kwargs, official_manifest):
    size = official_manifest["size"]
    flow = call_kwargs["flow_condition"][..., :-8]
    with pytest.raises(ValueError, match="flow_condition must be"):
        pipe(
            **call_kwargs | {"flow_condition": flow, "height": size["H"], "width": size["W"]},
            output_type="latent",
        )


def test_flow_conditioning_scale_zero_turns_trajectory_control_off(pipe, call_kwargs):
    def video(flow_condition, scale):
        kwargs = {**call_kwargs, "flow_condition": flow_condition, "output_type": "latent"}
        return pipe(**kwargs, flow_conditioning_scale=scale).frames

    flow = call_kwargs["flow_condition"]
    other_flow = flow.flip(-1) * -2.0
    assert not torch.allclose(video(flow, 1.0), video(other_flow, 1.0))
    # Scale 0: the motion ControlNet is not run, so the trajectories no longer matter.
    torch.testing.assert_close(video(flow, 0.0), video(other_flow, 0.0), rtol=0, atol=0)
    assert not torch.allclose(video(flow, 0.0), video(flow, 1.0))
    # A halved scale lands between off and full.
    off, half, full = (video(flow, scale) for scale in (0.0, 0.5, 1.0))
    assert 0 < (half - off).abs().mean() < (full - off).abs().mean()
    with pytest.raises(ValueError, match="flow_conditioning_scale"):
        video(flow, float("nan"))


def test_flow_encoding_is_saved_with_the_model_and_used_for_drawn_tracks(pipe, tmp_path):
    import json

    from imageconductor.trajectories import FlowEncoding, flow_condition

    assert pipe.flow_encoding == FlowEncoding()  # official checkpoints: the released encoding
    pipe.save_pretrained(tmp_path / "official")
    assert json.loads((tmp_path / "official" / "model_index.json").read_text()).get("flow_encoding") is None
    encoding = FlowEncoding(blur_sigma=3.0, kernel_size=19, kernel_normalization="peak")
    other = ImageConductorPipeline(**pipe.components, flow_encoding=encoding.as_kwargs())
    other.save_pretrained(tmp_path / "other")
    reloaded = ImageConductorPipeline.from_pretrained(tmp_path / "other")
    assert reloaded.flow_encoding == encoding
    tracks = [[[10.0, 12.0], [30.0, 20.0]]]
    torch.testing.assert_close(
        reloaded.prepare_flow_condition(tracks, 4, 64, 96),
        flow_condition(tracks, 4, 64, 96, **encoding.as_kwargs()),
        rtol=0,
        atol=0,
    )
    assert not torch.equal(
        pipe.prepare_flow_condition(tracks, 4, 64, 96), reloaded.prepare_flow_condition(tracks, 4, 64, 96)
    )
