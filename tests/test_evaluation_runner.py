"""The suite runner, the report (Markdown + PNG), the pipeline adapter and the `evaluate` CLI."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from imageconductor.cli import main
from imageconductor.evaluation.cases import EvalCase, staged_spec, synthetic_cases, synthetic_clip_suite
from imageconductor.evaluation.motion_metrics import EvaluationError
from imageconductor.evaluation.report import markdown_table, write_report
from imageconductor.evaluation.results import SuiteRunResult
from imageconductor.evaluation.runner import PipelineGenerator, evaluate_video, run_suite
from imageconductor.evaluation.suites import EvaluationSuite, load_suite
from imageconductor.pipelines.settings import SamplingSettings
from imageconductor.synthetic import BACKGROUND, CameraMotion, ClipSpec, SpriteSpec, render_clip

NUM_FRAMES = 12


@pytest.fixture(scope="module")
def object_clips():
    return synthetic_clip_suite("object", [101, 104], num_frames=NUM_FRAMES)


@pytest.fixture(scope="module")
def camera_clips():
    return synthetic_clip_suite("camera", [101, 102], num_frames=NUM_FRAMES)


def _still(case: EvalCase) -> np.ndarray:
    """A 'model' that ignores the trajectories: the first frame repeated."""
    return np.repeat(np.asarray(case.image)[None], NUM_FRAMES, axis=0)


def test_ground_truth_videos_score_near_zero_and_a_still_video_scores_the_motion(object_clips, tmp_path):
    suite, cases = object_clips
    truth = run_suite(suite, lambda c: c.reference, cases, tmp_path, label="truth", progress=False)
    still = run_suite(suite, _still, cases, tmp_path, label="still", save_videos=False, progress=False)
    assert [r.name for r in truth.results] == ["seed_101", "seed_104"]
    for good, bad, case in zip(truth.results, still.results, cases, strict=True):
        assert good.motion_error_px < 0.5
        target = np.asarray(good.target)
        # A still video leaves every point at its start: the error is the mean distance from it.
        expected = np.linalg.norm(target[1:] - target[:1], axis=-1).mean()
        assert bad.motion_error_px == pytest.approx(expected, rel=0.02)
        assert good.background_fraction < 0.05
        assert good.video_path == f"videos/{'01' if case.name == 'seed_101' else '02'}_{case.name}.mp4"
        assert (tmp_path / "truth" / good.video_path).is_file()
    assert truth.metric == "ObjMC"
    assert not (tmp_path / "still" / "videos").exists()


def test_camera_ground_truth_has_background_fraction_near_one(camera_clips, tmp_path):
    suite, cases = camera_clips
    run = run_suite(suite, lambda c: c.reference, cases, tmp_path, label="cam", progress=False, report=False)
    assert run.metric == "CamMC"
    for result in run.results:
        assert result.motion_error_px < 0.5
        assert result.background_fraction == pytest.approx(1.0, abs=0.1)


def test_runs_resume_from_saved_results(object_clips, tmp_path):
    suite, cases = object_clips
    first = run_suite(suite, lambda c: c.reference, cases[:1], tmp_path, label="r", progress=False)

    def must_not_run(case):
        if case.name == cases[0].name:
            raise AssertionError("a finished trajectory was generated again")
        return case.reference

    second = run_suite(suite, must_not_run, cases, tmp_path, label="r", progress=False)
    assert second.results[0].motion_error_px == first.results[0].motion_error_px
    assert len(second.results) == 2
    saved = SuiteRunResult.load(tmp_path / "r" / "run.json")
    other = PipelineGenerator(
        lambda **kwargs: None, SamplingSettings(mode="camera", num_frames=16, height=256, width=384)
    )
    with pytest.raises(EvaluationError, match="other settings"):
        run_suite(suite, other, cases, tmp_path, label="r", progress=False)
    assert [r.name for r in saved.results] == [c.name for c in cases]
    assert saved.mean("motion_error_px") == pytest.approx(second.mean("motion_error_px"))


def test_report_has_tables_with_the_run_numbers_and_a_png(object_clips, tmp_path):
    suite, cases = object_clips
    truth = run_suite(
        suite, lambda c: c.reference, cases, tmp_path, label="truth", progress=False, report=False
    )
    still = run_suite(suite, _still, cases, tmp_path, label="still", progress=False, report=False)
    files = write_report([truth, still], tmp_path / "report", title="Two runs")
    text = files.markdown.read_text()
    assert text.startswith("# Two runs")
    for run in (truth, still):
        row = next(line for line in text.splitlines() if line.startswith(f"| {run.label} |"))
        assert f"ObjMC {run.mean('motion_error_px'):.2f}" in row
        for result in run.results:
            assert re.search(rf"\| {result.name} \| {result.motion_error_px:.2f} \|", text)
    assert text.count("| **mean** |") == 2
    assert len(files.plots) == 3
    for plot in files.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(plot) as image:
            assert image.width > 200 and image.height > 200


def test_markdown_table_formats_numbers_and_missing_values():
    table = markdown_table(["a", "b"], [["x", 1.23456], ["y", float("nan")]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 1.23 |", "| y | – |"]


def test_synthetic_cases_put_a_sprite_at_each_object_track_start():
    full = load_suite("object")
    suite = EvaluationSuite(
        "some",
        "object",
        tuple(full[name] for name in ("line_right", "two_objects_crossing", "line_then_curve_with_anchor")),
    )
    cases = synthetic_cases(suite, seed=5)
    assert [c.name for c in cases] == [e.name for e in suite]
    for index, (entry, case) in enumerate(zip(suite, cases, strict=True)):
        assert case.image.shape == (256, 384, 3) and case.image.dtype == np.uint8
        clip = render_clip(staged_spec(entry, "object", 5 + index))
        np.testing.assert_array_equal(clip.frames[0], case.image)
        starts = np.array([track[0] for track in entry.trajectories.tracks])
        layers = clip.layer_at(starts)
        assert (layers != BACKGROUND).all() and len(set(layers)) == len(starts)  # one sprite per track
        assert case.prompt == clip.caption
    assert "moves right" in cases[0].prompt


def test_synthetic_clip_suite_draws_the_world_it_is_given():
    """A model trained on larger sprites is measured on clips with sprites as large as it saw."""
    from imageconductor.synthetic import random_clip_spec

    _, [plain] = synthetic_clip_suite("object", [103], 4, 96, 64, texture_scale=3.0)
    _, [large] = synthetic_clip_suite("object", [103], 4, 96, 64, texture_scale=3.0, sprite_scale=2.0)
    spec = random_clip_spec(103, "object", 4, 96, 64, texture_scale=3.0, sprite_scale=2.0)
    clip = render_clip(spec)
    np.testing.assert_array_equal(large.image, clip.frames[0])
    plain_clip = render_clip(random_clip_spec(103, "object", 4, 96, 64, texture_scale=3.0))
    np.testing.assert_array_equal(plain.image, plain_clip.frames[0])
    coverage = [(c.layer_map(0) != BACKGROUND).mean() for c in (plain_clip, clip)]
    assert coverage[1] > 2.0 * coverage[0]


def test_synthetic_camera_cases_caption_the_camera_motion():
    full = load_suite("camera")
    cases = synthetic_cases(EvaluationSuite("some", "camera", (full["pan_left"], full["zoom_in"])), seed=5)
    # Points moving left = content sliding left = the synthetic world's camera panning right.
    assert cases[0].prompt.endswith("camera pans right")
    assert cases[1].prompt.endswith("camera zooms in")


def test_pipeline_generator_passes_settings_and_converts_frames():
    calls = []

    def fake_pipe(**kwargs):
        calls.append(kwargs)
        frames = np.full((1, kwargs["num_frames"], kwargs["height"], kwargs["width"], 3), 0.5, np.float32)
        frames[0, 1] = 1.2  # out of range: clipped
        return SimpleNamespace(frames=frames)

    suite = load_suite("object")
    case = EvalCase("line_right", suite["line_right"].trajectories, np.zeros((128, 192, 3), np.uint8), "p")
    size = {"num_frames": 4, "height": 128, "width": 192}
    generate = PipelineGenerator(
        fake_pipe, SamplingSettings(mode="object", camera_free_guidance=2.0, seed=7, **size)
    )
    frames = generate(case)
    assert frames.shape == (4, 128, 192, 3) and frames.dtype == np.uint8
    assert frames[0, 0, 0, 0] == 128 and frames[1, 0, 0, 0] == 255
    kwargs = calls[0]
    assert kwargs["mode"] == "object" and kwargs["camera_free_guidance"] == 2.0
    assert kwargs["output_type"] == "np"
    np.testing.assert_allclose(
        kwargs["trajectories"].tracks[0], suite["line_right"].trajectories.tracks[0] / 2
    )
    assert generate.settings["camera_free_guidance"] == 2.0
    # motion guidance: passed on; recorded only when it is not the released 1 (older folders still resume)
    assert kwargs["motion_guidance_scale"] == 1.0 and "motion_guidance_scale" not in generate.settings
    guided = PipelineGenerator(fake_pipe, SamplingSettings(motion_guidance_scale=2.0, **size))
    guided(case)
    assert calls[-1]["motion_guidance_scale"] == 2.0 and guided.settings["motion_guidance_scale"] == 2.0


def test_untrackable_videos_are_scored_not_fatal(object_clips, tmp_path):
    suite, cases = object_clips
    rng = np.random.default_rng(0)

    def noise(case):
        frames = rng.integers(0, 256, size=case.reference.shape, dtype=np.uint8)
        frames[0] = case.reference[0]
        return frames

    run = run_suite(suite, noise, cases, tmp_path, label="noise", progress=False, report=False)
    assert len(run.results) == len(cases)
    for result in run.results:
        target = np.asarray(result.target)
        assert result.visible_fraction < 0.5
        assert np.isfinite(result.motion_error_px) and result.motion_error_px > 1.0
        # Lost points are held where last seen, so the error is at most the distance to a held position.
        assert result.motion_error_px <= np.linalg.norm(target[:, None] - target[None], axis=-1).max()


def test_evaluate_video_rejects_unknown_kinds(object_clips):
    _, cases = object_clips
    with pytest.raises(EvaluationError, match="kind"):
        evaluate_video(cases[0].reference, cases[0].trajectories, "mixed")


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_scores_a_video_file(tmp_path, capsys):
    from imageconductor.trajectories import save_trajectories
    from imageconductor.video_io import write_mp4

    sprite = SpriteSpec("square", "red", 40, (330.0, 40.0))
    clip = render_clip(
        ClipSpec(
            seed=9, kind="camera", num_frames=10, camera=CameraMotion(pan=(-40.0, 10.0)), sprites=(sprite,)
        )
    )
    points = np.array([[100.0, 80.0], [200.0, 150.0], [300.0, 200.0]])
    positions, _ = clip.track_points(points)
    from imageconductor.trajectories import TrajectorySet

    save_trajectories(
        TrajectorySet(list(positions.transpose(1, 0, 2)), "camera", 1.0, (384, 256)), tmp_path / "t.json"
    )
    write_mp4(clip.frames, tmp_path / "clip.mp4")
    status = main(
        [
            "evaluate",
            "video",
            str(tmp_path / "clip.mp4"),
            "--trajectories",
            str(tmp_path / "t.json"),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metric"] == "CamMC"
    assert printed["motion_error_px"] < 0.5  # through H.264 at the default quality
    assert printed["background_fraction"] == pytest.approx(1.0, abs=0.1)
    assert json.loads((tmp_path / "r.json").read_text())["name"] == "clip"


def test_cli_report_combines_runs(object_clips, tmp_path, capsys):
    suite, cases = object_clips
    run_suite(suite, lambda c: c.reference, cases, tmp_path, label="a", progress=False, report=False)
    run_suite(suite, _still, cases, tmp_path, label="b", progress=False, report=False)
    status = main(
        [
            "evaluate",
            "report",
            str(tmp_path / "a" / "run.json"),
            str(tmp_path / "b" / "run.json"),
            "--out",
            str(tmp_path / "both"),
        ]
    )
    assert status == 0
    text = (tmp_path / "both" / "report.md").read_text()
    assert "| a |" in text and "| b |" in text
    assert (tmp_path / "both" / "metrics.png").is_file()


def test_cli_errors_are_one_line(tmp_path, capsys):
    status = main(["evaluate", "fvd", str(tmp_path), str(tmp_path), "--i3d", str(tmp_path / "missing.pt")])
    assert status == 2
    error = capsys.readouterr().err
    assert "i3d_torchscript.pt" in error and "Traceback" not in error
    assert main(["evaluate", "report", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert "run file not found" in capsys.readouterr().err
