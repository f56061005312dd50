"""benchmarks/vs_official.py: its helpers, and a run without the official copy (this project only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import vs_official  # noqa: E402
from vs_official import format_ratio, relative_difference, run_order, summarize  # noqa: E402
from vs_official_worker import (  # noqa: E402
    load_inputs,
    read_result,
    save_inputs,
    step_durations,
    write_result,
)


def _record(steps: list[float], peak: float, loaded: float, sampling: float) -> dict:
    return {
        "step_s": steps,
        "peak_rss_mib": peak,
        "rss_after_load_mib": loaded,
        "sampling_peak_mib": sampling,
    }


def test_summary_takes_the_median_over_all_timed_steps_and_the_highest_memory():
    summary = summarize([_record([1.0, 3.0, 2.0], 900, 600, 750), _record([10.0, 4.0, 5.0], 950, 610, 700)])
    assert summary["median_s_per_step"] == pytest.approx(3.5)  # 1 2 3 4 5 10
    assert summary["round_medians"] == [2.0, 5.0]
    assert summary["peak_rss_mib"] == 950
    assert summary["rss_after_load_mib"] == 610
    assert summary["step_peak_above_load_mib"] == 150  # 750 - 600 beats 700 - 610


def test_ratio_format_and_run_order():
    assert format_ratio(8.5, 10.0) == "0.85x"
    assert format_ratio(1.0, 0.0) == "n/a"
    assert [run_order(index, ("official", "ours")) for index in range(3)] == [
        ("official", "ours"),
        ("ours", "official"),
        ("official", "ours"),
    ]
    assert step_durations([1.0, 3.5, 4.0]) == [2.5, 0.5]


def test_relative_difference_is_scaled_by_the_official_magnitude():
    official = torch.tensor([2.0, -4.0])
    assert relative_difference(official + torch.tensor([0.0, 0.0625]), official) == 0.015625
    assert relative_difference(torch.zeros(3), official) == float("inf")


def test_inputs_and_results_round_trip(tmp_path):
    generator = torch.Generator().manual_seed(1)
    tensors = {
        "latents": torch.randn(1, 4, 2, 8, 8, generator=generator),
        "image_latents": torch.randn(1, 4, 1, 8, 8, generator=generator),
        "flow_condition": torch.randn(1, 2, 2, 64, 64, generator=generator),
    }
    settings = {"prompt": "a cat", "negative_prompt": "", "frames": 2, "steps": 3, "guidance_scale": 7.5}
    save_inputs(tmp_path / "inputs.safetensors", tensors, settings)
    loaded, loaded_settings = load_inputs(tmp_path / "inputs.safetensors")
    assert loaded_settings == settings
    assert all(torch.equal(loaded[name], tensors[name]) for name in tensors)
    with pytest.raises(ValueError, match="flow_condition"):
        save_inputs(tmp_path / "bad.safetensors", {"latents": tensors["latents"]}, settings)

    record = {"side": "ours", "step_s": [0.5]}
    write_result(tmp_path / "result.safetensors", record, tensors["latents"], torch.zeros(1, 3, 2, 64, 64))
    read_record, read_tensors = read_result(tmp_path / "result.safetensors")
    assert read_record == record
    assert torch.equal(read_tensors["latents"], tensors["latents"])
    assert read_tensors["video"].shape == (1, 3, 2, 64, 64)


def test_without_the_official_copy_it_reports_this_projects_figures(tmp_path, capsys):
    figures = tmp_path / "figures.json"
    size = ["--frames", "2", "--height", "64", "--width", "64", "--steps", "2", "--rounds", "1"]
    # one worker process, this project's side; one thread: two stall for seconds on a busy 2-core machine
    assert vs_official.main([*size, "--threads", "1", "--json", str(figures)]) == 0
    printed = capsys.readouterr().out
    assert "this project's figures only" in printed
    table = [line.split() for line in printed.splitlines()]
    rows = [row for row in table if row[:1] in (["ours"], ["official"]) and row[1].replace(".", "").isdigit()]
    assert [row[0] for row in rows] == ["ours"]
    result = json.loads(figures.read_text())
    assert list(result["figures"]) == ["ours"]
    ours = result["figures"]["ours"]
    assert len(ours["step_s"]) == 1 and ours["median_s_per_step"] > 0
    assert ours["peak_rss_mib"] >= ours["rss_after_load_mib"] > 0
    assert "ratios" not in result and "agreement" not in result


def test_official_options_go_together(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        vs_official.main(["--official-code", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--official-code and --official-python go together" in capsys.readouterr().err
