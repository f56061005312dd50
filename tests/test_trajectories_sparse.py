"""Motion intensity and the paper's sparse track sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imageconductor.trajectories import (
    TrajectoryError,
    flow_condition_from_dense,
    motion_intensity,
    sample_sparse_tracks,
)


def _tracks_with_speeds(speeds: list[float], num_frames: int = 6) -> np.ndarray:
    """(T, N, 2) straight tracks moving ``speed`` px per frame along x, from distinct starts."""
    time = np.arange(num_frames)[:, None]
    x = 10.0 + time * np.asarray(speeds)[None, :]
    y = np.broadcast_to(np.arange(len(speeds)) * 3.0 + 5.0, x.shape)
    return np.stack([x, y], axis=-1)


def test_motion_intensity_is_path_length() -> None:
    tracks = np.array([[[0.0, 0.0], [1.0, 1.0]], [[3.0, 4.0], [1.0, 1.0]], [[3.0, 8.0], [1.0, 1.0]]])
    np.testing.assert_allclose(motion_intensity(tracks), [5.0 + 4.0, 0.0])
    visible = np.array([[True, True], [True, True], [False, True]])
    np.testing.assert_allclose(motion_intensity(tracks, visible), [5.0, 0.0])


def test_ten_times_the_motion_is_chosen_far_more_often() -> None:
    tracks = _tracks_with_speeds([1.0, 10.0])
    rng = np.random.default_rng(0)
    picks = [sample_sparse_tracks(tracks, rng=rng, n_min=1, n_max=1)[0] for _ in range(2000)]
    share = np.mean(np.asarray(picks) == 1)
    assert 0.87 < share < 0.95  # expected 10/11 = 0.909; binomial sd 0.0064


def test_choice_frequencies_follow_normalised_intensity() -> None:
    tracks = _tracks_with_speeds([1.0, 2.0, 7.0])
    rng = np.random.default_rng(1)
    counts = np.bincount(
        [sample_sparse_tracks(tracks, rng=rng, n_max=1)[0] for _ in range(3000)], minlength=3
    )
    np.testing.assert_allclose(counts / 3000, [0.1, 0.2, 0.7], atol=0.03)


def test_zero_motion_tracks_are_never_chosen_while_others_move() -> None:
    tracks = _tracks_with_speeds([0.0, 3.0, 0.0, 0.5, 0.0])
    for seed in range(200):
        chosen = sample_sparse_tracks(tracks, rng=seed, n_min=1, n_max=8)
        assert set(chosen.tolist()) <= {1, 3}
    assert sample_sparse_tracks(tracks, rng=0, n_min=4, n_max=4).tolist() == [1, 3]


def test_when_nothing_moves_visible_tracks_are_chosen_uniformly() -> None:
    tracks = _tracks_with_speeds([0.0] * 4)
    visible = np.ones((6, 4), dtype=bool)
    visible[:, 2] = False  # never visible: never chosen
    counts = np.zeros(4, dtype=int)
    for seed in range(300):
        counts[sample_sparse_tracks(tracks, visible, rng=seed, n_min=1, n_max=1)] += 1
    assert counts[2] == 0 and counts.sum() == 300
    assert counts[[0, 1, 3]].min() > 60  # ~100 each


def test_count_is_uniform_in_range_and_no_track_repeats() -> None:
    tracks = _tracks_with_speeds(list(np.linspace(1, 5, 20)))
    rng = np.random.default_rng(2)
    sizes = []
    for _ in range(1600):
        chosen = sample_sparse_tracks(tracks, rng=rng, n_min=2, n_max=8)
        assert len(np.unique(chosen)) == len(chosen)
        assert np.all(np.diff(chosen) > 0)
        sizes.append(len(chosen))
    counts = np.bincount(sizes, minlength=9)
    assert counts[:2].sum() == 0
    assert counts[2:].min() > 160  # ~229 each for 7 equally likely sizes


def test_same_seed_same_choice() -> None:
    tracks = _tracks_with_speeds(list(np.linspace(1, 5, 12)))
    first = sample_sparse_tracks(tracks, rng=np.random.default_rng(7))
    second = sample_sparse_tracks(tracks, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.int64


def test_sampling_arguments_are_checked() -> None:
    tracks = _tracks_with_speeds([1.0])
    with pytest.raises(TrajectoryError, match="n_min"):
        sample_sparse_tracks(tracks, n_min=3, n_max=2)
    with pytest.raises(TrajectoryError, match="rng"):
        sample_sparse_tracks(tracks, rng="seed")
    with pytest.raises(TrajectoryError, match="shape"):
        sample_sparse_tracks(np.zeros((4, 2)))


def test_sampled_tracks_build_a_training_condition() -> None:
    tracks = _tracks_with_speeds([0.0, 2.0, 4.0], num_frames=8)
    chosen = sample_sparse_tracks(tracks, rng=0, n_min=2, n_max=2)
    assert chosen.tolist() == [1, 2]
    condition = flow_condition_from_dense(tracks[:, chosen], 32, 64, blur_sigma=None)
    assert condition.shape == (1, 2, 8, 32, 64)
    expected_dx_sum = 7 * (2.0 + 4.0)
    torch.testing.assert_close(condition[0, 0].sum(), torch.tensor(expected_dx_sum))
