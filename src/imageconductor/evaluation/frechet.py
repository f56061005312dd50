"""Fréchet distances between feature sets: FID on frames, FVD on clips.

The feature networks are never downloaded: the user supplies TorchScript files, the same ones the
StyleGAN2-ADA / StyleGAN-V metric code uses.

- Inception (``inception-2015-12-05.pt``): called as ``net(images, return_features=True)`` on uint8
  images shaped ``(N, 3, H, W)`` (the network resizes to 299 itself) and returns ``(N, 2048)``.
- I3D (StyleGAN-V's ``i3d_torchscript.pt``): called as
  ``net(videos, rescale=False, resize=False, return_features=True)`` on float videos in ``[-1, 1]``
  shaped ``(B, 3, T, 224, 224)``; we resize (short side to 224, centre crop) ourselves, as the
  reference code does, and it returns ``(B, 400)``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = [
    "FeatureNetworkError",
    "FeatureStatistics",
    "I3DFeatureExtractor",
    "InceptionFeatureExtractor",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "frechet_distance_from_features",
    "fvd",
    "load_feature_network",
]

INCEPTION_FILE_NAME = "inception-2015-12-05.pt"
I3D_FILE_NAME = "i3d_torchscript.pt"


class FeatureNetworkError(RuntimeError):
    """A feature-network file exists but cannot be used (not TorchScript, wrong output...)."""


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean and covariance of a feature set (float64), with the number of samples behind them."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics to an ``.npz`` file (reuse reference statistics across runs)."""
        np.savez(path, mean=self.mean, covariance=self.covariance, count=self.count)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStatistics:
        with np.load(path) as data:
            return cls(data["mean"], data["covariance"], int(data["count"]))


def feature_statistics(features: np.ndarray | torch.Tensor) -> FeatureStatistics:
    """Mean and unbiased covariance of ``features`` shaped ``(num_samples, dim)``."""
    features = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (num_samples, dim), got shape {features.shape}")
    if features.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {features.shape[0]}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    features = features.astype(np.float64)
    return FeatureStatistics(features.mean(axis=0), np.cov(features, rowvar=False), features.shape[0])


def frechet_distance(
    mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mean1, cov1) and N(mean2, cov2).

    ``|m1 - m2|² + tr(C1 + C2 - 2 (C1 C2)^½)``. The matrix square root comes from
    ``scipy.linalg.sqrtm``; when it is not finite or inaccurate (near-singular product, e.g. fewer
    samples than feature dimensions) ``eps`` is added to both diagonals and it is recomputed. A small
    imaginary part from round-off is dropped; a large one raises.
    """
    mean1, mean2 = np.atleast_1d(mean1).astype(np.float64), np.atleast_1d(mean2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if mean1.shape != mean2.shape:
        raise ValueError(f"mean shapes differ: {mean1.shape} vs {mean2.shape}")
    dim = mean1.shape[0]
    if cov1.shape != (dim, dim) or cov2.shape != (dim, dim):
        raise ValueError(f"covariances must be ({dim}, {dim}), got {cov1.shape} and {cov2.shape}")

    covmean = _matrix_sqrt(cov1 @ cov2)
    if covmean is None:
        offset = np.eye(dim) * eps
        covmean = _matrix_sqrt((cov1 + offset) @ (cov2 + offset), accept_any_finite=True)
        if covmean is None:
            raise FloatingPointError("the covariance product has no finite square root, even regularised")
    if np.iscomplexobj(covmean):
        largest_imaginary = np.abs(np.diagonal(covmean).imag).max()
        if largest_imaginary > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
            raise FloatingPointError(
                f"matrix square root has a large imaginary component ({largest_imaginary:.3g}); "
                "the covariances are too ill-conditioned (use more samples)"
            )
        covmean = covmean.real

    diff = mean1 - mean2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def _matrix_sqrt(matrix: np.ndarray, accept_any_finite: bool = False) -> np.ndarray | None:
    """``scipy.linalg.sqrtm`` of ``matrix``, or None when it is not finite or (unless
    ``accept_any_finite``) its relative residual ‖X² − A‖/‖A‖ exceeds 1e-4 (a near-singular product)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(matrix)
    if not np.isfinite(root).all():
        return None
    if not accept_any_finite:
        scale = max(np.linalg.norm(matrix), 1e-300)
        if np.linalg.norm(root @ root - matrix) / scale > 1e-4:
            return None
    return root


def frechet_distance_from_features(
    features1: np.ndarray | FeatureStatistics, features2: np.ndarray | FeatureStatistics
) -> float:
    """Fréchet distance between two feature sets (raw ``(N, D)`` arrays or precomputed statistics)."""
    stats1 = features1 if isinstance(features1, FeatureStatistics) else feature_statistics(features1)
    stats2 = features2 if isinstance(features2, FeatureStatistics) else feature_statistics(features2)
    return frechet_distance(stats1.mean, stats1.covariance, stats2.mean, stats2.covariance)


def load_feature_network(
    path: str | os.PathLike, device: str | torch.device = "cpu", expected_name: str | None = None
) -> torch.jit.ScriptModule:
    """Load a TorchScript feature network from a user-supplied file (never downloads anything)."""
    path = Path(path)
    hint = f" (expected a TorchScript file such as {expected_name!r})" if expected_name else ""
    if not path.is_file():
        raise FileNotFoundError(
            f"feature network file not found: {path}{hint}; these weights cannot be downloaded at run "
            "time, place the file locally and pass its path"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what these files are
            net = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise FeatureNetworkError(f"{path} is not a loadable TorchScript module{hint}: {exc}") from exc
    return net.eval()


def _batches(items: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(np.asarray(item))
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _check_features(features: torch.Tensor, batch: int, net_name: str) -> np.ndarray:
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != batch:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise FeatureNetworkError(f"{net_name} returned {shape}, expected features shaped ({batch}, dim)")
    return features.detach().to(torch.float64).cpu().numpy()


class InceptionFeatureExtractor:
    """Frames ``(H, W, 3)`` uint8 → Inception pool features, from ``inception-2015-12-05.pt``."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = load_feature_network(path, self.device, expected_name=INCEPTION_FILE_NAME)

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        """``images`` (N, H, W, 3) uint8 → (N, D) float64 features."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)
        return _check_features(self.net(batch, return_features=True), len(images), "Inception network")

    def __call__(self, images: Iterable[np.ndarray], progress: bool = True) -> np.ndarray:
        """Features of an iterable of frames (each (H, W, 3) uint8), batched."""
        chunks = [
            self.features(batch)
            for batch in tqdm(
                _batches(images, self.batch_size), desc="Inception features", disable=not progress
            )
        ]
        if not chunks:
            raise ValueError("no images given")
        return np.concatenate(chunks)


def preprocess_videos_for_i3d(videos: np.ndarray, resolution: int = 224) -> torch.Tensor:
    """uint8 videos (B, T, H, W, 3) → float (B, 3, T, R, R) in [-1, 1]: short side to R, centre crop."""
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise ValueError(f"videos must be uint8 (B, T, H, W, 3), got {videos.dtype} {videos.shape}")
    b, t, h, w, _ = videos.shape
    frames = torch.from_numpy(np.ascontiguousarray(videos)).reshape(b * t, h, w, 3).permute(0, 3, 1, 2)
    frames = frames.to(torch.float32) / 255.0
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h <= w else (math.ceil(h * scale), resolution)
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    frames = frames[:, :, top : top + resolution, left : left + resolution]
    frames = frames.reshape(b, t, 3, resolution, resolution).permute(0, 2, 1, 3, 4)
    return (frames * 2.0 - 1.0).contiguous()


class I3DFeatureExtractor:
    """Clips (T, H, W, 3) uint8 → I3D features, from StyleGAN-V's ``i3d_torchscript.pt``."""

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        resolution: int = 224,
    ):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.resolution = resolution
        self.net = load_feature_network(path, self.device, expected_name=I3D_FILE_NAME)

    @torch.no_grad()
    def features(self, videos: np.ndarray) -> np.ndarray:
        """``videos`` (B, T, H, W, 3) uint8 → (B, D) float64 features."""
        batch = preprocess_videos_for_i3d(videos, self.resolution).to(self.device)
        output = self.net(batch, rescale=False, resize=False, return_features=True)
        return _check_features(output, batch.shape[0], "I3D network")

    def __call__(self, videos: Iterable[np.ndarray], progress: bool = True) -> np.ndarray:
        """Features of an iterable of clips (each (T, H, W, 3) uint8, all the same length), batched."""
        chunks = []
        for batch in tqdm(_batches(videos, self.batch_size), desc="I3D features", disable=not progress):
            chunks.append(self.features(batch))
        if not chunks:
            raise ValueError("no videos given")
        return np.concatenate(chunks)


def _clip_list(videos: Iterable[np.ndarray], num_frames: int | None, which: str) -> list[np.ndarray]:
    clips = []
    for index, video in enumerate(videos):
        video = np.asarray(video)
        if num_frames is not None:
            if video.shape[0] < num_frames:
                raise ValueError(f"{which} video {index} has {video.shape[0]} frames, need {num_frames}")
            video = video[:num_frames]
        clips.append(video)
    lengths = {clip.shape[0] for clip in clips}
    if len(lengths) > 1:
        raise ValueError(f"{which} videos have different lengths {sorted(lengths)}; pass num_frames")
    return clips


def fid(
    real_images: Iterable[np.ndarray],
    fake_images: Iterable[np.ndarray],
    inception_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    progress: bool = True,
) -> float:
    """Fréchet Inception Distance between two sets of uint8 frames (each (H, W, 3))."""
    extractor = InceptionFeatureExtractor(inception_path, device, batch_size)
    return frechet_distance_from_features(
        extractor(real_images, progress=progress), extractor(fake_images, progress=progress)
    )


def fvd(
    real_videos: Iterable[np.ndarray],
    fake_videos: Iterable[np.ndarray],
    i3d_path: str | os.PathLike,
    num_frames: int | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    progress: bool = True,
) -> float:
    """Fréchet Video Distance between two sets of uint8 clips (each (T, H, W, 3)).

    ``num_frames`` keeps the first frames of every clip (StyleGAN-V uses 16); without it all clips
    must already have the same length.
    """
    extractor = I3DFeatureExtractor(i3d_path, device, batch_size)
    real = _clip_list(real_videos, num_frames, "real")
    fake = _clip_list(fake_videos, num_frames, "fake")
    return frechet_distance_from_features(
        extractor(real, progress=progress), extractor(fake, progress=progress)
    )
