"""The released weights from the Hugging Face Hub: only the files the model needs, in the standard cache.

From the authors' repository (``TencentARC/ImageConductor``) the three released checkpoints, and on request
one of its personalised models; from the Stable Diffusion 1.5 repository only the configs, the VAE, the
text encoder and the tokenizer (the released ``unet.ckpt`` holds the whole UNet, so the base UNet's
weights are never fetched). Files go to the Hub cache (``HF_HUB_CACHE``, or ``cache_dir``) through
``huggingface_hub``, so a second call reads them from there, also offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_MODEL_PATTERNS",
    "PERSONALIZED_FILES",
    "RELEASED_CHECKPOINTS",
    "RELEASED_REPO_ID",
    "SD15_REPO_ID",
    "HubFiles",
    "HubWeightsError",
    "fetch_official_files",
    "fetch_personalized_file",
]

#: The authors' model repository.
RELEASED_REPO_ID = "TencentARC/ImageConductor"
#: The Stable Diffusion 1.5 repository the released model is built on.
SD15_REPO_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
#: ``from_official`` argument -> file name in the released repository.
RELEASED_CHECKPOINTS = {
    "unet_path": "unet.ckpt",
    "image_controlnet_path": "image_controlnet.ckpt",
    "flow_controlnet_path": "flow_controlnet.ckpt",
}
#: The released app's personalised models (a DreamBooth checkpoint and a LoRA) in the released repository.
PERSONALIZED_FILES = {
    "helloobjects_V12c": "helloobjects_V12c.safetensors",
    "TUSUN": "TUSUN.safetensors",
}
#: What the base repository contributes: configs, VAE, text encoder, tokenizer (safetensors, full precision).
BASE_MODEL_PATTERNS = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/*",
)
_BASE_REQUIRED = tuple(pattern for pattern in BASE_MODEL_PATTERNS if "*" not in pattern) + (
    "tokenizer/tokenizer_config.json",
)
_TRUE = {"1", "ON", "YES", "TRUE"}


class HubWeightsError(OSError):
    """The Hub files cannot be had: offline and not cached, unknown repository or file, network failure.

    The message is one line naming the repository and what to do.
    """


@dataclass(frozen=True)
class HubFiles:
    """Local paths of the released model's files in the Hub cache (the arguments of ``from_official``)."""

    pretrained_model_path: Path
    unet_path: Path
    image_controlnet_path: Path
    flow_controlnet_path: Path


def _offline(local_files_only: bool) -> bool:
    from huggingface_hub import constants

    return (
        local_files_only
        or constants.is_offline_mode()
        or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
    )


def _hub_error(repo_id: str, what: str, exc: Exception, offline: bool) -> HubWeightsError:
    from huggingface_hub.errors import LocalEntryNotFoundError

    if offline or isinstance(exc, LocalEntryNotFoundError):
        return HubWeightsError(
            f"{what} of {repo_id} is not in the Hugging Face cache and the Hub is not reachable (offline); "
            f"run once with internet access (HF_HUB_OFFLINE unset) to download it, or point HF_HUB_CACHE "
            f"/ cache_dir at a cache that holds it"
        )
    message = " ".join(str(exc).split())[:300]
    return HubWeightsError(f"cannot fetch {what} of {repo_id} from the Hugging Face Hub: {message}")


def _download(
    repo_id: str, filename: str, revision: str | None, cache_dir: str | Path | None, offline: bool
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir, local_files_only=offline
        )
    except (OSError, HfHubHTTPError, ValueError) as exc:
        raise _hub_error(repo_id, filename, exc, offline) from exc
    return Path(path)


def fetch_official_files(
    repo_id: str = RELEASED_REPO_ID,
    base_model_id: str = SD15_REPO_ID,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> HubFiles:
    """Fetch (or find in the cache) the released checkpoints of ``repo_id`` at ``revision`` and the
    `BASE_MODEL_PATTERNS` files of ``base_model_id`` (its main branch).

    Offline (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``) only the cache is read. Raises
    `HubWeightsError` with a one-line message when something cannot be had.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    offline = _offline(local_files_only)
    checkpoints = {
        argument: _download(repo_id, filename, revision, cache_dir, offline)
        for argument, filename in RELEASED_CHECKPOINTS.items()
    }
    try:
        folder = Path(
            snapshot_download(
                base_model_id,
                allow_patterns=list(BASE_MODEL_PATTERNS),
                cache_dir=cache_dir,
                local_files_only=offline,
            )
        )
    except (OSError, HfHubHTTPError, ValueError) as exc:
        raise _hub_error(base_model_id, "the base model", exc, offline) from exc
    missing = [name for name in _BASE_REQUIRED if not (folder / name).is_file()]
    if missing:
        raise HubWeightsError(
            f"the cached snapshot of {base_model_id} ({folder}) lacks {', '.join(missing)}; run once with "
            "internet access (HF_HUB_OFFLINE unset) to complete it"
        )
    return HubFiles(pretrained_model_path=folder, **checkpoints)


def fetch_personalized_file(
    name: str,
    repo_id: str = RELEASED_REPO_ID,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """The local path of a personalised model of the released repository: ``name`` is a key of
    `PERSONALIZED_FILES` (``"helloobjects_V12c"``, ``"TUSUN"``) or a ``.safetensors`` file name there."""
    filename = PERSONALIZED_FILES.get(name, name)
    if not filename.endswith(".safetensors"):
        raise HubWeightsError(
            f"unknown personalised model {name!r}: use one of {sorted(PERSONALIZED_FILES)} or a .safetensors "
            f"file name in {repo_id}"
        )
    return _download(repo_id, filename, revision, cache_dir, _offline(local_files_only))
