"""``--scheduler`` on the command line and the scheduler setting of the app: checked before any weight
loads, recorded in the sampling settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import imageconductor.cli.common as common
from imageconductor.app.settings import (
    SettingsError,
    check_settings,
    default_settings,
    scheduler_choices,
)
from imageconductor.cli.entry import build_parser
from imageconductor.pipelines import SCHEDULER_NAMES, VideoSize, default_model_path
from test_fail_fast import _fails, _generate


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a command gets as far as loading weights."""

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded before the bad input was refused")

    import imageconductor.cli.app as app
    import imageconductor.cli.generate as generate

    for module in (common, generate, app):
        monkeypatch.setattr(module, "load_pipeline", refuse)


def test_the_command_line_offers_the_pipelines_scheduler_names():
    assert common.SCHEDULER_CHOICES == SCHEDULER_NAMES


def test_an_unknown_scheduler_is_one_line_exit_2_before_loading(tmp_path, capsys, no_loading):
    line = _fails(_generate(tmp_path / "x.mp4", "--scheduler", "bogus"), capsys)
    assert "--scheduler: unknown scheduler 'bogus'; choose one of ddim, dpm++2m" in line
    line = _fails(["app", "--scheduler", "bogus"], capsys)
    assert "unknown scheduler 'bogus'" in line
    assert list(tmp_path.iterdir()) == []


def test_a_scheduler_the_model_cannot_use_is_refused_before_loading(tmp_path, capsys, no_loading):
    # A copy of the default model's folder whose scheduler predicts the clean sample: no euler-a for it.
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model, ignore=shutil.ignore_patterns("*.safetensors"))
    config_path = model / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "prediction_type": "sample"}))
    out = tmp_path / "out"
    out.mkdir()
    weights = ["--weights-dir", str(model)]
    line = _fails(_generate(out / "x.mp4", *weights, "--scheduler", "euler-a"), capsys)
    assert "--scheduler: scheduler 'euler-a' does not sample 'sample' models" in line
    line = _fails(["app", *weights, "--scheduler", "euler-a"], capsys)
    assert "does not sample 'sample' models" in line
    assert list(out.iterdir()) == []


def test_the_scheduler_option_reaches_the_sampling_settings():
    args = build_parser().parse_args(_generate(Path("x.mp4"), "--scheduler", " UniPC "))
    size = VideoSize(num_frames=8, height=64, width=96)
    settings = common.sampling_settings(args, size, seed=0)
    assert settings.scheduler == "unipc" and settings.pipeline_kwargs()["scheduler"] == "unipc"
    default = common.sampling_settings(build_parser().parse_args(_generate(Path("x.mp4"))), size, seed=0)
    assert default.scheduler == "ddim"
    # The official files sample with the released DDIM settings, whatever the SD1.5 folder says.
    assert (
        common.scheduler_config(
            build_parser().parse_args(
                _generate(
                    Path("x.mp4"), "--pretrained-model-path", "sd", "--unet", "u", "--image-controlnet", "i"
                )
                + ["--flow-controlnet", "f"]
            )
        )["steps_offset"]
        == 1
    )


def test_app_settings_check_and_record_the_scheduler():
    base = dict(
        prompt="a cat",
        negative_prompt="",
        mode="object",
        steps=3,
        guidance_scale=7.5,
        camera_free_guidance=None,
        motion_guidance=1.0,
        num_frames=8,
        seed=1,
    )
    assert check_settings(**base).scheduler == "ddim"
    assert check_settings(**base, scheduler="").scheduler == "ddim"
    assert check_settings(**base, scheduler="DPM++2M").scheduler == "dpm++2m"
    with pytest.raises(SettingsError, match="unknown scheduler 'bogus'; choose one of"):
        check_settings(**base, scheduler="bogus")


def test_app_offers_the_schedulers_that_can_sample_the_model():
    class Scheduler:
        def __init__(self, config):
            self.config = config

    class Pipe:
        def __init__(self, config):
            self.config = {}
            self.scheduler = Scheduler(config)

    assert scheduler_choices(Pipe({"prediction_type": "v_prediction"})) == list(SCHEDULER_NAMES)
    sample = Pipe({"prediction_type": "sample"})
    assert "euler-a" not in scheduler_choices(sample) and "unipc" in scheduler_choices(sample)
    assert default_settings(sample, {"scheduler": "unipc"})["scheduler"] == "unipc"
    with pytest.raises(SettingsError, match="cannot sample this model"):
        default_settings(sample, {"scheduler": "euler-a"})
