"""At which noise level does a model lose the camera's motion? One denoising step on noised held-out clips.

    python research/denoised_motion_probe.py MODEL [MODEL ...] [--mode none] [--timesteps 200,400,600,800,950]

Each held-out synthetic camera clip (the model's world, as in `motion_direction_probe.py`) is encoded by the
model's VAE, noised to timestep t, and denoised in one step: the model's estimate of the clean clip
(x0), decoded. Its global shift between the first and last frame (phase correlation) is compared with the
clip's own: mean length, mean error and mean direction cosine. Three flow conditions: the clip's
trajectories, the same negated, and trajectory control off.

Unlike a generated video, the noised clip still holds the motion at low t, so a model that keeps it there
and loses it at high t has learned to denoise motion but not to draw it from its conditions; one whose
estimate changes with the condition's sign has learned which way the trajectories point.
About 20 seconds per folder on 2 cores.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from motion_direction_probe import (
    add_clip_arguments,
    direction_summary,
    global_shift,
    load_camera_clips,
    summary_cells,
)

#: The flow conditions: name → (factor on the clip's condition, flow-ControlNet scale; 0 = control off).
CONDITIONS = {"condition": (1.0, 1.0), "negated": (-1.0, 1.0), "control off": (1.0, 0.0)}


def clean_estimate(scheduler, noisy, prediction, timestep: int):
    """x0 from the model's output at ``timestep`` (ε- or v-prediction, per the scheduler's config)."""
    alpha = scheduler.alphas_cumprod[timestep].to(noisy.dtype)
    if scheduler.config.prediction_type == "v_prediction":
        return alpha.sqrt() * noisy - (1 - alpha).sqrt() * prediction
    if scheduler.config.prediction_type == "epsilon":
        return (noisy - (1 - alpha).sqrt() * prediction) / alpha.sqrt().clamp(min=1e-4)
    raise ValueError(f"unsupported prediction_type {scheduler.config.prediction_type!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(parser)
    parser.add_argument(
        "--timesteps",
        type=lambda text: [int(value) for value in text.split(",")],
        default=[200, 400, 600, 800, 950],
        help="comma-separated training timesteps",
    )
    args = parser.parse_args(argv)

    import torch

    from imageconductor.conditioning import image_condition
    from imageconductor.models import predict_noise

    print("| model | timestep | flow | shift length px | error vs the clip px | direction cosine |")
    print("|---|---|---|---|---|---|")
    for folder in args.folders:
        clips = load_camera_clips(folder, args)
        pipe, cases, frames = clips.pipe, clips.cases, clips.frames
        scheduler, vae = pipe.scheduler, pipe.vae
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            videos = torch.stack([torch.from_numpy(case.reference) for case in cases]).float() / 127.5 - 1
            pixels = videos.permute(0, 1, 4, 2, 3).flatten(0, 1)  # (N·F, 3, H, W)
            latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
            latents = latents.unflatten(0, (len(cases), frames)).transpose(1, 2)  # (N, c, F, h, w)
            text = pipe.encode_prompt([case.prompt for case in cases], pipe.device)
            first = image_condition(latents[:, :, :1], frames)
            flow = torch.cat(clips.trajectory_conditions())
            for timestep in args.timesteps:
                noise = torch.randn(latents.shape, generator=generator)
                steps = torch.full((len(cases),), timestep)
                noisy = scheduler.add_noise(latents, noise, steps)
                for name, (factor, scale) in CONDITIONS.items():
                    prediction = predict_noise(
                        pipe.unet,
                        pipe.image_controlnet,
                        pipe.flow_controlnet,
                        noisy,
                        steps,
                        text,
                        first,
                        flow * factor,
                        args.mode,
                        flow_scale=scale,
                    )
                    video = pipe.decode_latents(clean_estimate(scheduler, noisy, prediction, timestep))
                    video = (video.permute(0, 2, 3, 4, 1) * 255).round().to(torch.uint8).numpy()
                    shifts = np.array([global_shift(row) for row in video])
                    cells = summary_cells(direction_summary(shifts, clips.reference))
                    print(f"| {folder} | {timestep} | {name} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
