"""Selecting curated clips by their ``kind`` label: the shard dataset and the training stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imageconductor.curation.shards import Sample, write_shard
from imageconductor.data import ClipDatasetConfig, ShardFormatError, TrajectoryClipDataset
from imageconductor.training.config import ConfigError, TrainingConfig
from imageconductor.training.run import build_dataset
from imageconductor.video_io import encode_mp4_bytes

KINDS = {"a": "camera", "b": "object", "c": "camera", "d": "object", "e": "camera"}


def _write(folder: Path, kinds: dict[str, str | None]) -> Path:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    clip = encode_mp4_bytes(frames, 8, 15)
    tracks = np.zeros((4, 3, 2), np.float32) + 10
    samples = []
    for key, kind in kinds.items():
        metadata = {"caption": key} if kind is None else {"caption": key, "kind": kind}
        samples.append(Sample(key, clip, tracks, np.ones((4, 3), bool), metadata))
    write_shard(folder / "shards" / "shard-000000.tar", samples[:3])
    write_shard(folder / "shards" / "shard-000001.tar", samples[3:])
    return folder


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("labelled"), KINDS)


def _keys(dataset: TrajectoryClipDataset) -> list[str]:
    return [location.key for location in dataset.locations]


def test_dataset_keeps_the_selected_kinds_in_order(labelled: Path) -> None:
    assert _keys(TrajectoryClipDataset(labelled, ClipDatasetConfig(num_frames=2))) == list(KINDS)
    camera = TrajectoryClipDataset(labelled, ClipDatasetConfig(num_frames=2, kinds=("camera",)))
    assert _keys(camera) == ["a", "c", "e"] and len(camera) == 3
    assert camera[1]["caption"] == "c"
    objects = TrajectoryClipDataset(labelled, num_frames=2, kinds=("object",))
    assert _keys(objects) == ["b", "d"]


def test_unlabelled_samples_and_bad_kinds_are_errors(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"a": "camera", "b": None})
    with pytest.raises(ShardFormatError, match="'b' .* has no curated kind"):
        TrajectoryClipDataset(folder, num_frames=2, kinds=("camera",))
    assert len(TrajectoryClipDataset(folder, num_frames=2)) == 2  # no selection: labels are not needed
    with pytest.raises(ShardFormatError, match="no sample of kind object"):
        TrajectoryClipDataset(_write(tmp_path / "cam", {"a": "camera"}), num_frames=2, kinds=("object",))
    with pytest.raises(ValueError, match="kinds must be"):
        ClipDatasetConfig(kinds=("mixed",))


def _config(stage: str, folder: Path, **data) -> TrainingConfig:
    return TrainingConfig.from_dict(
        {
            "stage": stage,
            "model": {"pretrained_model_path": str(folder / "model")},
            "data": {
                "source": "shards",
                "shards": [str(folder)],
                "num_frames": 2,
                "height": 32,
                "width": 48,
                **data,
            },
        }
    )


def test_camera_stage_trains_on_camera_clips_by_default(labelled: Path) -> None:
    dataset, _ = build_dataset(_config("camera", labelled))
    assert _keys(dataset) == ["a", "c", "e"]
    for stage in ("controlnet", "object"):
        assert _keys(build_dataset(_config(stage, labelled))[0]) == list(KINDS)
    chosen, _ = build_dataset(_config("object", labelled, curated_kinds=["object"]))
    assert _keys(chosen) == ["b", "d"]
    both, _ = build_dataset(_config("camera", labelled, curated_kinds=["object", "camera"]))
    assert _keys(both) == list(KINDS)
    with pytest.raises(ConfigError, match="curated_kinds"):
        _config("camera", labelled, curated_kinds=["mixed"])
    with pytest.raises(ConfigError, match="curated_kinds"):
        _config("camera", labelled, curated_kinds=[])
