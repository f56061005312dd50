"""The training data loader over curation shards: frames, captions, trajectory conditions, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from imageconductor.curation.shards import Sample, write_shard
from imageconductor.data import (
    ClipDatasetConfig,
    ShardFormatError,
    TrajectoryClipDataset,
    TrajectoryClipStream,
    collate_clips,
)
from imageconductor.synthetic import random_clip_spec, render_clip
from imageconductor.trajectories import flow_condition_from_dense, grid_points
from imageconductor.video_io import decode_mp4_bytes, encode_mp4_bytes

WIDTH, HEIGHT, FRAMES = 96, 64, 12
SMALL_BLUR = {"blur_sigma": 2.0, "kernel_size": 9}


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """Two shards of synthetic clips with their exact ground-truth tracks; one clip where few points move."""
    folder = tmp_path_factory.mktemp("shards")
    samples = []
    for seed, kind in [(1, "camera"), (2, "mixed"), (3, "object"), (4, "camera"), (5, "mixed")]:
        clip = render_clip(random_clip_spec(seed, kind=kind, num_frames=FRAMES, width=WIDTH, height=HEIGHT))
        tracks, visible = clip.track_points(grid_points(WIDTH, HEIGHT, 8), frame=0)
        metadata = {"caption": clip.caption, "input_id": f"clip{seed}"}
        samples.append(Sample(f"clip{seed}", encode_mp4_bytes(clip.frames, 8, 15), tracks, visible, metadata))
    still = samples[-1]
    tracks = np.repeat(still.tracks[:1], FRAMES, axis=0)
    tracks[:, :3] += np.linspace(0, 20, FRAMES)[:, None, None]  # only tracks 0, 1, 2 move
    samples[-1] = Sample(
        "still", still.clip, tracks, np.ones(tracks.shape[:2], bool), {"caption": "few move"}
    )
    write_shard(folder / "shards" / "shard-000000.tar", samples[:3])
    write_shard(folder / "shards" / "shard-000001.tar", samples[3:])
    return folder


def _dataset(shard_dir, **options):
    return TrajectoryClipDataset(shard_dir, ClipDatasetConfig(num_frames=8, **SMALL_BLUR, **options))


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_items_hold_the_right_frames_and_the_dense_condition(shard_dir):
    dataset = _dataset(shard_dir, tracks="dense")
    assert len(dataset) == 5
    item = dataset[1]
    assert item["key"] == "clip2"
    assert (
        item["caption"]
        == random_clip_spec(2, kind="mixed", num_frames=FRAMES, width=WIDTH, height=HEIGHT).caption
    )
    indices = item["frame_indices"].numpy()
    assert len(indices) == 8 and np.all(np.diff(indices) == 1)
    from imageconductor.data import load_sample

    sample = load_sample(dataset.locations[1])
    np.testing.assert_array_equal(sample.frames, decode_mp4_bytes(_clip_bytes(dataset, 1)))
    expected_pixels = torch.from_numpy(sample.frames[indices]).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(item["pixel_values"], expected_pixels)
    assert item["pixel_values"].shape == (8, 3, HEIGHT, WIDTH)
    expected = flow_condition_from_dense(
        sample.tracks[indices], HEIGHT, WIDTH, sample.visibility[indices], **SMALL_BLUR
    )[0]
    torch.testing.assert_close(item["flow_condition"], expected.float())
    assert item["flow_condition"].shape == (2, 8, HEIGHT, WIDTH)
    assert item["flow_condition"][:, 0].abs().max() == 0  # zero first frame
    assert item["flow_condition"].abs().sum() > 0
    assert len(item["track_indices"]) == 64
    # another flow encoding (a model trained with a peak-1 kernel) blurs the same tracks its way
    peak = _dataset(shard_dir, tracks="dense", kernel_normalization="peak")[1]["flow_condition"]
    expected_peak = flow_condition_from_dense(
        sample.tracks[indices],
        HEIGHT,
        WIDTH,
        sample.visibility[indices],
        **SMALL_BLUR,
        kernel_normalization="peak",
    )[0]
    torch.testing.assert_close(peak, expected_peak.float())
    assert peak.abs().max() > 2 * item["flow_condition"].abs().max()


def _clip_bytes(dataset, index):
    from imageconductor.data.shard_reader import read_part

    return read_part(dataset.locations[index], "mp4")


def test_sparse_tracks_pick_one_to_eight_moving_tracks(shard_dir):
    dataset = _dataset(shard_dir, tracks="sparse")
    counts = []
    for epoch in range(12):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            chosen = item["track_indices"].numpy()
            counts.append(len(chosen))
            assert 1 <= len(chosen) <= 8 and len(set(chosen)) == len(chosen)
            sample_tracks = item["tracks"].numpy()
            assert sample_tracks.shape == (8, len(chosen), 2)
            if item["key"] == "still":
                assert set(chosen) <= {0, 1, 2}  # tracks that never move are never drawn
            if epoch > 1:
                continue
            expected = flow_condition_from_dense(
                sample_tracks, HEIGHT, WIDTH, item["visibility"].numpy(), **SMALL_BLUR
            )[0]
            torch.testing.assert_close(item["flow_condition"], expected.float())
    assert min(counts) == 1 and max(counts) == 8


def test_deterministic_per_seed_and_fresh_per_epoch(shard_dir):
    first = [_dataset(shard_dir)[i] for i in range(5)]
    again = [_dataset(shard_dir)[i] for i in range(5)]
    assert all(_same(a, b) for a, b in zip(first, again, strict=True))
    other_seed = [_dataset(shard_dir, seed=1)[i] for i in range(5)]
    assert not all(_same(a, b) for a, b in zip(first, other_seed, strict=True))
    dataset = _dataset(shard_dir)
    dataset.set_epoch(1)
    next_epoch = [dataset[i] for i in range(5)]
    assert not all(_same(a, b) for a, b in zip(first, next_epoch, strict=True))
    dataset.set_epoch(0)
    assert all(_same(a, dataset[i]) for i, a in enumerate(first))


def test_dataloader_batches_repeat_per_seed_and_change_per_epoch(shard_dir):
    def batches(epoch: int) -> list[dict]:
        stream = TrajectoryClipStream(_dataset(shard_dir))
        stream.set_epoch(epoch)
        return list(DataLoader(stream, batch_size=2, collate_fn=collate_clips))

    epoch0, epoch0_again, epoch1 = batches(0), batches(0), batches(1)
    assert [b["pixel_values"].shape[0] for b in epoch0] == [2, 2, 1]
    assert epoch0[0]["flow_condition"].shape == (2, 2, 8, HEIGHT, WIDTH)
    assert isinstance(epoch0[0]["captions"], list) and len(epoch0[0]["captions"]) == 2
    for a, b in zip(epoch0, epoch0_again, strict=True):
        assert a["key"] == b["key"] and torch.equal(a["flow_condition"], b["flow_condition"])
    order0 = [k for b in epoch0 for k in b["key"]]
    order1 = [k for b in epoch1 for k in b["key"]]
    assert sorted(order0) == sorted(order1) and order0 != order1


def test_stream_splits_between_ranks_without_overlap(shard_dir):
    dataset = _dataset(shard_dir)
    parts = [TrajectoryClipStream(dataset, rank=r, world_size=2).order() for r in range(2)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(5))


def test_loader_errors(shard_dir, tmp_path):
    with pytest.raises(ValueError, match="tracks"):
        ClipDatasetConfig(tracks="medium")
    # the flow encoding is checked when the config is made, not at the first item
    with pytest.raises(ValueError, match="normalization"):
        ClipDatasetConfig(kernel_normalization="max")
    with pytest.raises(ValueError, match="odd"):
        ClipDatasetConfig(kernel_size=10)
    with pytest.raises(ShardFormatError, match="not found"):
        TrajectoryClipDataset(tmp_path / "missing.tar")
    with pytest.raises(ValueError, match="frames"):
        TrajectoryClipDataset(shard_dir, num_frames=FRAMES + 1)[0]
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar file at all" * 40)
    with pytest.raises(ShardFormatError, match="broken.tar"):
        TrajectoryClipDataset(broken)
