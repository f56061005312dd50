"""Reconstruction error of model folders' VAEs on held-out synthetic frames (first and last frame of
each clip; decoded from the posterior mean), in 0..255 pixel units.

    python research/vae_reconstruction.py src/imageconductor/assets/default_model [OTHER_FOLDER ...]

Prints, per folder, the mean absolute error, the same on sprite pixels and on background pixels alone
(a VAE that keeps the scene but drops the small sprites shows it here), and the colour error (the mean
absolute difference of each frame's average colour: how far the hue and brightness of whole frames
drift).

With ``--motion-floor`` it also scores the held-out evaluation clips (``--seeds``, as
``imageconductor evaluate synthetic``) encoded and decoded by each VAE, tracked as a generated video would
be: the ObjMC / CamMC below which no model drawing through that VAE can go. It is the same as that
script's "through the VAE" rows, but needs only a VAE (e.g. the ``final`` folder of a ``vae`` stage), so a
VAE can be judged before the stages that follow it are trained. Give the world of the model's clips
(``--texture-scale 3 --motion-scale 3`` for the default model).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def held_out_frames(
    count: int, num_frames: int, height: int, width: int, seed: int, texture_scale: float = 1.0
):
    """``(2·count, 3, H, W)`` first and last frames in [-1, 1] of synthetic clips of dataset ``seed``, and
    ``(2·count, H, W)`` masks of their sprite pixels."""
    import torch

    from imageconductor.training.synthetic_data import SyntheticClipDataset

    clips = SyntheticClipDataset(
        count, num_frames, height, width, seed=seed, texture_scale=texture_scale, sprite_masks=True
    )
    items = [clips[index] for index in range(count)]
    picks = (0, num_frames - 1)
    images = torch.stack([item["frames"][:, frame] for item in items for frame in picks])
    masks = torch.stack([item["sprite_mask"][frame] for item in items for frame in picks])
    return images, masks


def motion_floor(vae, seeds: range, num_frames: int, height: int, width: int, world: dict, out_dir: Path):
    """``{"object": ObjMC, "camera": CamMC}`` px of the held-out clips ``seeds`` through ``vae``."""
    import torch

    from imageconductor.evaluation.cases import synthetic_clip_suite
    from imageconductor.evaluation.runner import run_suite
    from imageconductor.evaluation.synthetic_benchmark import VaeRoundTrip

    errors = {}
    for kind in ("object", "camera"):
        suite, cases = synthetic_clip_suite(kind, seeds, num_frames, width, height, **world)
        with torch.no_grad():
            result = run_suite(suite, VaeRoundTrip(vae), cases, out_dir, label=kind, mode="-", progress=False)
        errors[kind] = result.summary()["motion_error_px"]
    return errors


def main(argv: list[str] | None = None) -> int:
    from imageconductor.cli.common import seed_range

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="pipeline folders (with a vae/ sub-folder)")
    parser.add_argument("--clips", type=int, default=32, help="held-out clips (default 32)")
    parser.add_argument("--seed", type=int, default=1, help="dataset seed (training uses 0; default 1)")
    parser.add_argument("--size", default="8x64x96", help="FRAMESxHEIGHTxWIDTH (default 8x64x96)")
    parser.add_argument("--texture-scale", type=float, default=1.0, help="synthetic background smoothness")
    parser.add_argument(
        "--motion-floor",
        action="store_true",
        help="also ObjMC / CamMC of the held-out clips through each VAE",
    )
    parser.add_argument("--motion-scale", type=float, default=1.0, help="clip speeds (with --motion-floor)")
    parser.add_argument(
        "--seeds",
        type=seed_range,
        default=range(10_000, 10_016),
        help="held-out clips START:STOP (--motion-floor)",
    )
    args = parser.parse_args(argv)

    import torch
    from diffusers import AutoencoderKL

    num_frames, height, width = (int(v) for v in args.size.split("x"))
    images, sprites = held_out_frames(args.clips, num_frames, height, width, args.seed, args.texture_scale)
    print(
        f"{len(images)} held-out frames ({args.clips} clips, dataset seed {args.seed}, {width}x{height}, "
        f"texture scale {args.texture_scale:g}; sprites cover {sprites.float().mean().item():.0%} of the pixels)"
    )
    print("| model | MAE /255 | sprite MAE /255 | background MAE /255 | colour error /255 |")
    print("|---|---|---|---|---|")
    for folder in args.folders:
        vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
        with torch.no_grad():
            decoded = vae.decode(vae.encode(images).latent_dist.mean).sample.clamp(-1, 1)
        error = (decoded - images).abs().mean(1) * 127.5  # (N, H, W)
        colour = (decoded.mean((2, 3)) - images.mean((2, 3))).abs().mean().item() * 127.5
        print(
            f"| {folder} | {error.mean().item():.1f} | {error[sprites].mean().item():.1f} | "
            f"{error[~sprites].mean().item():.1f} | {colour:.1f} |",
            flush=True,
        )
    if args.motion_floor:
        world = {"texture_scale": args.texture_scale, "motion_scale": args.motion_scale}
        print(
            f"\nHeld-out evaluation clips through each VAE: seeds {args.seeds.start}..{args.seeds.stop - 1}, "
            f"motion scale {args.motion_scale:g}, tracked with the evaluation tracker"
        )
        print("| model | ObjMC through the VAE px | CamMC through the VAE px |")
        print("|---|---|---|")
        for folder in args.folders:
            vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
            with tempfile.TemporaryDirectory() as scratch:
                floor = motion_floor(vae, args.seeds, num_frames, height, width, world, Path(scratch))
            print(f"| {folder} | {floor['object']:.2f} | {floor['camera']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
