"""End-to-end curation runs on a small synthetic corpus: outputs, bad files, resumability, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from imageconductor.curation.config import CurationConfig
from imageconductor.curation.demo import write_demo_corpus
from imageconductor.curation.pipeline import DryRunReport, curate
from imageconductor.curation.shards import read_index
from imageconductor.curation.workdir import WORK_DIR_NAME
from imageconductor.data import iter_samples

CONFIG = CurationConfig(samples_per_shard=2, seed=3)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_demo_corpus(
        tmp_path_factory.mktemp("corpus"), num_videos=5, seed=1, frames_per_scene=(34, 44), bad_files=True
    )


@pytest.fixture(scope="module")
def clean_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    result = curate(corpus.manifest, out, CONFIG, progress=False, log=lambda message: None)
    return out, result


def test_bad_files_are_reported_and_good_ones_kept(corpus, clean_run):
    out, result = clean_run
    report = {
        row["input_id"]: row for row in map(json.loads, (out / "report.jsonl").read_text().splitlines())
    }
    assert len(report) == 5 + len(corpus.expected_reasons)
    for name, reason in corpus.expected_reasons.items():
        assert report[name]["status"] == "dropped"
        assert report[name]["reason"] == reason, (name, report[name])
        assert report[name]["detail"]
    good = [report[name] for name in corpus.cut_frames]
    # the global motion cut: floor(25% of 5 candidates) = 1, the lowest score
    low = [row for row in good if row["reason"] == "low_motion"]
    assert len(low) == 1
    assert low[0]["motion_score"] == min(row["motion_score"] for row in good)
    assert result.summary["kept"] == 4 and result.summary["dropped"] == len(corpus.expected_reasons) + 1
    assert result.summary["motion_threshold"] == low[0]["motion_score"]


def test_shard_contents_match_the_metadata_and_the_index(corpus, clean_run):
    out, result = clean_run
    assert [p.name for p in result.shards] == [
        "shard-000000.tar",
        "shard-000001.tar",
    ]  # 4 samples, 2 per shard
    samples = list(iter_samples(out))
    index = read_index(result.index_path)
    assert [row["key"] for row in index] == [s.key for s in samples]
    cfg = CONFIG
    for sample, row in zip(samples, index, strict=True):
        meta = sample.metadata
        name = meta["input_id"]
        assert sample.frames.shape == (cfg.num_frames, cfg.height, cfg.width, 3)
        assert sample.tracks.shape == (cfg.num_frames, cfg.grid_size**2, 2)
        assert sample.visibility.shape == (cfg.num_frames, cfg.grid_size**2)
        np.testing.assert_allclose(sample.tracks[0], _grid(cfg), atol=0.02)
        # the window lies inside the longest true scene and follows the recorded stride
        bounds = [0, *corpus.cut_frames[name], None]
        scene = tuple(meta["scene"])
        assert scene[0] in bounds[:-1]
        indices = np.array(meta["frame_indices"])
        assert np.all(np.diff(indices) == meta["stride"]) and indices[0] == meta["window_start"]
        assert scene[0] <= indices[0] and indices[-1] < scene[1]
        assert meta["crop"] == [0, 0, 384, 256]
        assert (
            row["motion_score"] == meta["motion_score"]
            and row["caption"] == meta["caption"] == sample.caption
        )
        # pass 2 labels the clip from its tracks; captions here come from sidecars (no model named)
        assert meta["kind"] in ("camera", "object") and row["kind"] == meta["kind"]
        assert meta["kind_tracked_points"] >= meta["kind_moving_points"] >= 0
        assert meta["caption_source"] == ("sidecar" if meta["caption"] else "none")
        assert meta["track_trust"] == cfg.track_trust
    # webdataset itself reads the shards
    keys = [s["__key__"] for s in wds.WebDataset([str(p) for p in result.shards], shardshuffle=False)]
    assert keys == [s.key for s in samples]


def _grid(cfg):
    from imageconductor.trajectories import grid_points

    return grid_points(cfg.width, cfg.height, cfg.grid_size)


def test_rerun_reuses_cache_and_changes_nothing(corpus, clean_run, tmp_path):
    out, result = clean_run
    before = shard_bytes(out)
    report = curate(corpus.manifest, out, CONFIG, dry_run=True)
    assert isinstance(report, DryRunReport)
    assert report.pass1_cached == report.num_inputs == 5 + len(corpus.expected_reasons)
    assert report.pass2_cached == 4
    start = time.perf_counter()
    again = curate(corpus.manifest, out, CONFIG, progress=False, log=lambda message: None)
    assert time.perf_counter() - start < 10
    assert shard_bytes(out) == before and again.summary == result.summary
    # a dry run on a fresh folder writes nothing
    curate(corpus.manifest, tmp_path / "fresh", CONFIG, dry_run=True)
    assert not (tmp_path / "fresh").exists()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "imageconductor.cli", "curate", *args]


def test_kill_9_then_resume_gives_the_clean_shards(corpus, clean_run, tmp_path):
    clean_out, _ = clean_run
    out = tmp_path / "killed"
    args = _cli(str(corpus.manifest), str(out), "--seed", "3", "--samples-per-shard", "2", "--no-progress")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), *sys.path])}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pass1 = out / WORK_DIR_NAME / CONFIG.fingerprint() / "pass1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(pass1.glob("*.json"))) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    finished_before = len(list(pass1.glob("*.json")))
    assert 3 <= finished_before < 5 + len(corpus.expected_reasons)

    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "kept" in resumed.stderr  # the summary table
    assert shard_bytes(out) == shard_bytes(clean_out)
    for name in ("index.parquet", "report.jsonl", "summary.json"):
        assert (out / name).read_bytes() == (clean_out / name).read_bytes()


def test_cli_reports_bad_arguments(tmp_path, corpus, capsys):
    from imageconductor.cli import main as cli_main

    def main(argv):
        return cli_main(["curate", *argv])

    for extra, message in [
        (["--stride-min", "9", "--stride-max", "2"], "stride_min"),
        (["--motion-drop", "1.5"], "motion_drop_fraction"),
        (["--tracker", "cotracker"], "cotracker"),
        (["--motion-backend", "raft"], "--raft-weights"),
    ]:
        assert main([str(corpus.manifest), str(tmp_path / "o"), *extra]) == 2
        assert message in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(corpus.manifest), str(tmp_path / "o"), "--engine", "spark"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "o").exists()
