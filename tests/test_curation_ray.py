"""The Ray Data engine gives byte-identical outputs to the local engine (one shared local Ray cluster)."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from imageconductor.curation.config import CurationConfig  # noqa: E402
from imageconductor.curation.demo import write_demo_corpus  # noqa: E402
from imageconductor.curation.pipeline import curate  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_ray_engine_equals_local_engine(ray_cluster, tmp_path):
    corpus = write_demo_corpus(
        tmp_path / "in", num_videos=3, seed=4, frames_per_scene=(34, 40), bad_files=True
    )
    config = CurationConfig(samples_per_shard=1, seed=11, motion_drop_fraction=0.34)
    local = curate(
        corpus.manifest, tmp_path / "local", config, engine="local", progress=False, log=lambda m: None
    )
    remote = curate(
        corpus.manifest, tmp_path / "ray", config, engine="ray", progress=False, log=lambda m: None
    )
    assert remote.summary == local.summary
    assert local.summary["kept"] == 2  # 3 candidates, floor(0.34 * 3) = 1 dropped
    assert [p.name for p in remote.shards] == [p.name for p in local.shards]
    for a, b in zip(local.shards, remote.shards, strict=True):
        assert a.read_bytes() == b.read_bytes()
    for name in ("index.parquet", "report.jsonl", "summary.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    # Ray resumes from its own cache too: a second run does no new work and writes the same bytes
    before = [p.read_bytes() for p in remote.shards]
    again = curate(
        corpus.manifest, tmp_path / "ray", config, engine="ray", progress=False, log=lambda m: None
    )
    assert [p.read_bytes() for p in again.shards] == before
