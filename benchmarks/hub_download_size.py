"""Bytes `ImageConductorPipeline.from_hub` fetches against full snapshots of the two repositories.

Offline (default) it uses the file sizes the Hub's "Files and versions" pages list (rounded as shown
there; see LISTED_SOURCES); ``--online`` asks the Hub for the exact sizes instead. The files selected are
those of `imageconductor.pipelines.hub` (its patterns applied with huggingface_hub's own filter).

    python benchmarks/hub_download_size.py
"""

from __future__ import annotations

import argparse

from huggingface_hub.utils import filter_repo_objects

from imageconductor.pipelines.hub import (
    BASE_MODEL_PATTERNS,
    PERSONALIZED_FILES,
    RELEASED_CHECKPOINTS,
    RELEASED_REPO_ID,
    SD15_REPO_ID,
)

KB, MB, GB = 1e3, 1e6, 1e9
#: Where the listed sizes come from.
LISTED_SOURCES = {
    RELEASED_REPO_ID: "https://huggingface.co/TencentARC/ImageConductor/tree/main",
    SD15_REPO_ID: "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/tree/main/unet and the "
    "same repository's files as listed by its duplicates (pcuenq/stable-diffusion-v1-5 commit 6364162, "
    "runwayml/stable-diffusion-v1-5/tree/main/safety_checker); the tokenizer and the small configs (about 1.6 MB "
    "together) were not on the pages found and carry the usual SD1.5 sizes: they do not move the figures",
}
#: Listed sizes in bytes (decimal units, rounded as the pages show them).
LISTED_SIZES = {
    RELEASED_REPO_ID: {
        ".gitattributes": 1.52 * KB,
        "README.md": 558,
        "TUSUN.safetensors": 189 * MB,
        "flow_controlnet.ckpt": 1.16 * GB,
        "helloobjects_V12c.safetensors": 2.4 * GB,
        "image_controlnet.ckpt": 994 * MB,
        "unet.ckpt": 2.56 * GB,
    },
    SD15_REPO_ID: {
        ".gitattributes": 1.55 * KB,
        "README.md": 14.5 * KB,
        "model_index.json": 541,
        "v1-inference.yaml": 1.87 * KB,
        "v1-5-pruned-emaonly.ckpt": 4.27 * GB,
        "v1-5-pruned-emaonly.safetensors": 4.27 * GB,
        "v1-5-pruned.ckpt": 7.7 * GB,
        "v1-5-pruned.safetensors": 7.7 * GB,
        "feature_extractor/preprocessor_config.json": 342,
        "safety_checker/config.json": 4.72 * KB,
        "safety_checker/model.fp16.safetensors": 608 * MB,
        "safety_checker/model.safetensors": 1.22 * GB,
        "safety_checker/pytorch_model.bin": 1.22 * GB,
        "safety_checker/pytorch_model.fp16.bin": 608 * MB,
        "scheduler/scheduler_config.json": 308,
        "text_encoder/config.json": 617,
        "text_encoder/model.fp16.safetensors": 246 * MB,
        "text_encoder/model.safetensors": 492 * MB,
        "text_encoder/pytorch_model.bin": 492 * MB,
        "text_encoder/pytorch_model.fp16.bin": 246 * MB,
        "tokenizer/merges.txt": 525 * KB,
        "tokenizer/special_tokens_map.json": 472,
        "tokenizer/tokenizer_config.json": 806,
        "tokenizer/vocab.json": 1.06 * MB,
        "unet/config.json": 743,
        "unet/diffusion_pytorch_model.bin": 3.44 * GB,
        "unet/diffusion_pytorch_model.fp16.bin": 1.72 * GB,
        "unet/diffusion_pytorch_model.fp16.safetensors": 1.72 * GB,
        "unet/diffusion_pytorch_model.non_ema.bin": 3.44 * GB,
        "unet/diffusion_pytorch_model.non_ema.safetensors": 3.44 * GB,
        "unet/diffusion_pytorch_model.safetensors": 3.44 * GB,
        "vae/config.json": 547,
        "vae/diffusion_pytorch_model.bin": 335 * MB,
        "vae/diffusion_pytorch_model.fp16.bin": 167 * MB,
        "vae/diffusion_pytorch_model.fp16.safetensors": 167 * MB,
        "vae/diffusion_pytorch_model.safetensors": 335 * MB,
    },
}


def online_sizes(repo_id: str) -> dict[str, float]:
    """Exact file sizes of ``repo_id``'s main branch, asked from the Hub."""
    from huggingface_hub import HfApi

    tree = HfApi().list_repo_tree(repo_id, recursive=True)
    return {entry.path: entry.size for entry in tree if getattr(entry, "size", None) is not None}


def selected(repo_id: str, names: list[str], personalized: bool) -> list[str]:
    """The files ``from_hub`` fetches from ``repo_id`` (plus both personalised models when asked)."""
    if repo_id == SD15_REPO_ID:
        return list(filter_repo_objects(names, allow_patterns=list(BASE_MODEL_PATTERNS)))
    wanted = set(RELEASED_CHECKPOINTS.values()) | (
        set(PERSONALIZED_FILES.values()) if personalized else set()
    )
    return [name for name in names if name in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--online", action="store_true", help="exact sizes from the Hub (needs internet)")
    args = parser.parse_args()
    print(f"sizes: {'the Hub, now' if args.online else 'as listed on the Hub pages (rounded)'}")
    print("| repository | files fetched / in repo | GB fetched | GB full snapshot | share |")
    print("|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for repo_id in (RELEASED_REPO_ID, SD15_REPO_ID):
        sizes = online_sizes(repo_id) if args.online else LISTED_SIZES[repo_id]
        chosen = selected(repo_id, sorted(sizes), personalized=False)
        fetched, full = sum(sizes[name] for name in chosen), sum(sizes.values())
        totals[0] += fetched
        totals[1] += full
        print(
            f"| {repo_id} | {len(chosen)} / {len(sizes)} | {fetched / GB:.2f} | {full / GB:.2f} | "
            f"{fetched / full:.1%} |"
        )
        if repo_id == SD15_REPO_ID:
            print(f"|  (selected: {', '.join(chosen)}) | | | | |")
    print(f"| both | | {totals[0] / GB:.2f} | {totals[1] / GB:.2f} | {totals[0] / totals[1]:.1%} |")
    extra = sum(LISTED_SIZES[RELEASED_REPO_ID][name] for name in PERSONALIZED_FILES.values())
    print(f"personalised models on request (helloobjects_V12c + TUSUN): {extra / GB:.2f} GB more")
    for repo_id, source in LISTED_SOURCES.items():
        print(f"listed sizes of {repo_id}: {source}")


if __name__ == "__main__":
    main()
