"""Fréchet distance numerics and the FID / FVD plumbing with tiny TorchScript feature networks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from imageconductor.evaluation.frechet import (
    FeatureNetworkError,
    FeatureStatistics,
    I3DFeatureExtractor,
    InceptionFeatureExtractor,
    feature_statistics,
    fid,
    frechet_distance,
    frechet_distance_from_features,
    fvd,
    load_feature_network,
    preprocess_videos_for_i3d,
)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _reference_distance(mean1, cov1, mean2, cov2) -> float:
    """Independent formula: tr(sqrt(C1 C2)) = tr(sqrt(C1^½ C2 C1^½)), a symmetric PSD matrix."""
    root1 = _psd_sqrt(cov1)
    middle = _psd_sqrt(root1 @ cov2 @ root1)
    diff = mean1 - mean2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(middle))


def test_identical_feature_sets_give_zero():
    features = np.random.default_rng(0).normal(size=(200, 16))
    assert abs(frechet_distance_from_features(features, features)) < 1e-8


def test_means_apart_by_d_with_identity_covariances_give_d_squared():
    dim, d = 6, 3.5
    mean2 = np.zeros(dim)
    mean2[2] = d
    value = frechet_distance(np.zeros(dim), np.eye(dim), mean2, np.eye(dim))
    assert value == pytest.approx(d**2, abs=1e-9)


def test_one_dimensional_gaussians():
    # FD(N(m1, a²), N(m2, b²)) = (m1 - m2)² + (a - b)².
    value = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert value == pytest.approx(3.0**2 + (2.0 - 3.0) ** 2, abs=1e-9)


def test_diagonal_covariances():
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    value = frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
    assert value == pytest.approx(3.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), abs=1e-9)


def test_general_covariances_match_an_independent_formula():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    cov1, cov2 = x @ x.T + 0.1 * np.eye(8), y @ y.T + 0.1 * np.eye(8)
    mean1, mean2 = rng.normal(size=8), rng.normal(size=8)
    value = frechet_distance(mean1, cov1, mean2, cov2)
    assert value == pytest.approx(_reference_distance(mean1, cov1, mean2, cov2), rel=1e-8)
    assert value == pytest.approx(frechet_distance(mean2, cov2, mean1, cov1), rel=1e-8)  # symmetric


def test_rank_deficient_covariances_stay_finite():
    # Fewer samples than dimensions: singular covariances, as with small evaluation sets.
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=(5, 12)), rng.normal(size=(5, 12)) + 1.0
    value = frechet_distance_from_features(first, second)
    s1, s2 = feature_statistics(first), feature_statistics(second)
    assert np.isfinite(value)
    assert value == pytest.approx(
        _reference_distance(s1.mean, s1.covariance, s2.mean, s2.covariance), rel=1e-3
    )


def test_feature_statistics_and_round_trip(tmp_path):
    features = np.random.default_rng(3).normal(size=(50, 4))
    stats = feature_statistics(features)
    np.testing.assert_allclose(stats.mean, features.mean(axis=0))
    np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False))
    stats.save(tmp_path / "stats.npz")
    loaded = FeatureStatistics.load(tmp_path / "stats.npz")
    np.testing.assert_array_equal(loaded.covariance, stats.covariance)
    assert loaded.count == 50


@pytest.mark.parametrize(
    "bad, message",
    [(np.zeros((1, 3)), "at least 2"), (np.zeros(5), "2-D"), (np.full((3, 2), np.nan), "NaN")],
)
def test_feature_statistics_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        feature_statistics(bad)


def test_mismatched_dimensions_raise():
    with pytest.raises(ValueError, match="mean shapes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ------------------------------------------------------------------------------------ feature networks


class TinyInception(torch.nn.Module):
    """Stands in for inception-2015-12-05.pt: uint8 (N, 3, H, W) -> per-channel mean and std / 255."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise ValueError("expected uint8 images")
        if not return_features:
            return torch.zeros(1)  # a wrong shape: the caller must ask for features
        pixels = x.float() / 255.0
        return torch.cat([pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))], dim=1)


class TinyI3D(torch.nn.Module):
    """Stands in for StyleGAN-V's i3d_torchscript.pt: (B, 3, T, 224, 224) in [-1, 1] -> features with
    per-channel means and mean absolute temporal change (so motion matters)."""

    def forward(
        self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False
    ) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise ValueError("call with rescale=False, resize=False, return_features=True")
        if x.shape[1] != 3 or x.shape[3] != 224 or x.shape[4] != 224:
            raise ValueError("expected (B, 3, T, 224, 224)")
        if x.min() < -1.0 or x.max() > 1.0:
            raise ValueError("expected values in [-1, 1]")
        change = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(2, 3, 4))
        return torch.cat([x.mean(dim=(2, 3, 4)), change], dim=1)


@pytest.fixture(scope="module")
def network_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    inception, i3d = folder / "inception-2015-12-05.pt", folder / "i3d_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the real files are TorchScript
        torch.jit.script(TinyInception()).save(str(inception))
        torch.jit.script(TinyI3D()).save(str(i3d))
    return inception, i3d


def _images(seed: int, count: int, brightness: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(brightness, 30.0, size=(count, 24, 32, 3)), 0, 255).astype(np.uint8)


def test_fid_equals_frechet_distance_of_network_features(network_files):
    inception, _ = network_files
    real, fake = _images(0, 12, 100.0), _images(1, 10, 140.0)
    value = fid(list(real), list(fake), inception, batch_size=5, progress=False)

    net = TinyInception()
    with torch.no_grad():
        real_features = net(torch.from_numpy(real).permute(0, 3, 1, 2), return_features=True).double().numpy()
        fake_features = net(torch.from_numpy(fake).permute(0, 3, 1, 2), return_features=True).double().numpy()
    assert value == pytest.approx(frechet_distance_from_features(real_features, fake_features), rel=1e-5)
    assert value > 0.01
    assert fid(list(real), list(real), inception, progress=False) == pytest.approx(0.0, abs=1e-9)


def test_inception_extractor_rejects_float_images(network_files):
    extractor = InceptionFeatureExtractor(network_files[0])
    with pytest.raises(ValueError, match="uint8"):
        extractor.features(np.zeros((2, 8, 8, 3), dtype=np.float32))


def test_i3d_preprocessing_resizes_short_side_and_centre_crops():
    video = np.zeros((1, 2, 32, 64, 3), dtype=np.uint8)
    video[..., :16, :] = 255  # left quarter white: after resize 224x448 + centre crop, it is cut away
    video[..., 24:40, :] = 255  # a white band in the middle stays, scaled by 7 (x 168..280 -> 56..168)
    batch = preprocess_videos_for_i3d(video)
    assert batch.shape == (1, 3, 2, 224, 224)
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    row = batch[0, 0, 0, 100].numpy()
    assert row[8:48].max() == pytest.approx(-1.0)  # left quarter cropped out
    assert row[64:160].min() == pytest.approx(1.0)  # middle band present
    assert row[176:].max() == pytest.approx(-1.0)


def _clips(seed: int, count: int, moving: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        base = rng.integers(0, 255, size=(24, 40, 3), dtype=np.uint8)
        shift = 3 if moving else 0
        clips.append(np.stack([np.roll(base, shift * t, axis=1) for t in range(6)]))
    return clips


def test_fvd_equals_frechet_distance_of_network_features(network_files):
    _, i3d = network_files
    still, moving = _clips(0, 6, moving=False), _clips(1, 6, moving=True)
    value = fvd(still, moving, i3d, batch_size=4, progress=False)

    net = TinyI3D()
    with torch.no_grad():
        a = net(preprocess_videos_for_i3d(np.stack(still)), False, False, True).double().numpy()
        b = net(preprocess_videos_for_i3d(np.stack(moving)), False, False, True).double().numpy()
    assert value == pytest.approx(frechet_distance_from_features(a, b), rel=1e-5)
    assert value > 0.01
    assert fvd(still, still, i3d, progress=False) == pytest.approx(0.0, abs=1e-9)


def test_fvd_crops_clips_to_num_frames_and_rejects_short_ones(network_files):
    _, i3d = network_files
    clips = _clips(2, 4, moving=True)
    longer = [np.concatenate([c, c[:2]]) for c in clips]
    assert fvd(clips, longer, i3d, num_frames=6, progress=False) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="need 8"):
        fvd(clips, clips, i3d, num_frames=8, progress=False)


def test_missing_network_file_names_the_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="i3d_torchscript.pt"):
        I3DFeatureExtractor(tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        fid([np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8, 3), np.uint8)] * 2, tmp_path / "x.pt")


def test_non_torchscript_file_is_rejected(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(FeatureNetworkError, match="TorchScript"):
        load_feature_network(path)


def test_fid_command_on_image_folders_and_saved_statistics(network_files, tmp_path, capsys):
    from PIL import Image

    from imageconductor.cli import main

    inception, _ = network_files
    real, fake = _images(4, 6, 90.0), _images(5, 6, 150.0)
    for name, images in (("real", real), ("fake", fake)):
        (tmp_path / name).mkdir()
        for index, image in enumerate(images):
            Image.fromarray(image).save(tmp_path / name / f"{index}.png")
    stats = tmp_path / "real.npz"
    args = ["evaluate", "fid", str(tmp_path / "real"), str(tmp_path / "fake"), "--inception", str(inception)]
    assert main([*args, "--save-real-stats", str(stats)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fid"] == pytest.approx(fid(list(real), list(fake), inception, progress=False), rel=1e-6)
    assert (printed["real_count"], printed["fake_count"]) == (6, 6)
    args[2] = str(stats)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == pytest.approx(printed["fid"], rel=1e-9)
