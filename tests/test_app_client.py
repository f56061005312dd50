"""The web app's /generate endpoint through gradio_client, on the embedded default model (few steps)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from imageconductor.app.generation import Cancelled, generate_video
from imageconductor.app.settings import check_settings, native_video_size
from imageconductor.trajectories import TrajectorySet
from imageconductor.video_io import read_video

#: Seconds any one request may take before the test fails.
TIMEOUT = 180
#: Tracks in pixels of the default model's 96x64 frame: one object moving right, or moving left.
RIGHT = [[[20, 30], [45, 32], [70, 34]]]
LEFT = [[[70, 34], [45, 32], [20, 30]]]


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> Path:
    """A smooth, textured test picture (200 x 120) with a bright blob to move."""
    yy, xx = np.mgrid[0:120, 0:200]
    picture = np.stack([xx * 1.2, yy * 2.0, 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], axis=-1)
    picture[(xx - 60) ** 2 + (yy - 60) ** 2 < 400] = 250
    path = tmp_path_factory.mktemp("app-client") / "picture.png"
    PIL.Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def client(app_server, tmp_path_factory) -> Client:
    app, _ = app_server
    downloads = tmp_path_factory.mktemp("client-downloads")
    return Client(app.local_url, verbose=False, download_files=str(downloads), analytics_enabled=False)


def _generate(client: Client, image: Path, trajectories, **settings):
    job = client.submit(
        image=handle_file(str(image)),
        prompt=settings.pop("prompt", "a ball rolls"),
        trajectories=trajectories if isinstance(trajectories, str) else json.dumps(trajectories),
        api_name="/generate",
        **settings,
    )
    return job.result(timeout=TIMEOUT)


def test_generate_endpoint_names_its_parameters_and_defaults(client, app_server):
    _, pipe = app_server
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]
    names = [parameter["parameter_name"] for parameter in parameters["parameters"]]
    assert names[:6] == ["image", "prompt", "trajectories", "mode", "steps", "seed"]
    defaults = {
        parameter["parameter_name"]: parameter["parameter_default"] for parameter in parameters["parameters"]
    }
    assert defaults["steps"] == 25 and defaults["seed"] == -1 and defaults["mode"] == "auto"
    assert defaults["frames"] == native_video_size(pipe)[0] and defaults["guidance_scale"] == 7.5
    # The scheduler came after the other parameters, with a default: older positional calls still work.
    assert names[-1] == "scheduler" and defaults["scheduler"] == "ddim"
    assert parameters["returns"][0]["component"] == "Video"


def test_generate_returns_a_playable_mp4_that_follows_the_trajectories(client, image_path, app_server):
    _, pipe = app_server
    num_frames, height, width = native_video_size(pipe)
    right = _generate(client, image_path, RIGHT, mode="object", steps=2, seed=7)
    left = _generate(client, image_path, LEFT, mode="object", steps=2, seed=7)
    again = _generate(client, image_path, RIGHT, mode="object", steps=2, seed=7)
    video, panel, downloads, seed, status = right
    assert Path(video).suffix == ".mp4" and seed == 7 and "seed 7" in status
    assert [Path(path).name for path in downloads] == ["video.mp4", "video.side_by_side.mp4"]
    frames, fps = read_video(video)
    assert frames.shape == (num_frames, height, width, 3) and fps == 8
    # Same seed and tracks: the same video; other tracks: a clearly different one.
    np.testing.assert_array_equal(read_video(again[0])[0], frames)
    other = read_video(left[0])[0]
    difference = np.abs(frames.astype(float) - other.astype(float)).mean(axis=(1, 2, 3))
    assert difference[1:].mean() > 2.0, difference
    # The side-by-side shows the video on the left and the same video with the tracks on the right.
    side = read_video(panel)[0]
    assert side.shape == (num_frames, height, 2 * width + 4, 3)
    assert np.abs(side[:, :, :width].astype(float) - frames).mean() < 3
    assert np.abs(side[:, :, width + 4 :].astype(float) - frames).max() > 100  # the drawn tracks


def test_empty_seed_is_reported_and_reproduces_the_run(client, image_path):
    camera = [[[20, 20], [30, 20]], [[70, 40], [80, 40]]]
    # No seed given: the endpoint's default (-1) draws one and reports it.
    first = _generate(client, image_path, camera, mode="camera=1,object=0.5", steps=1, gif=True)
    seed = first[3]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert [Path(path).suffix for path in first[2]] == [".mp4", ".mp4", ".gif", ".gif"]
    second = _generate(client, image_path, camera, mode="camera=1,object=0.5", steps=1, seed=seed)
    np.testing.assert_array_equal(read_video(first[0])[0], read_video(second[0])[0])


def test_the_scheduler_parameter_picks_the_sampler(client, image_path):
    ddim = _generate(client, image_path, RIGHT, mode="object", steps=2, seed=5)
    unipc = _generate(client, image_path, RIGHT, mode="object", steps=2, seed=5, scheduler="unipc")
    assert "2 steps (ddim)" in ddim[4] and "2 steps (unipc)" in unipc[4]
    assert not np.array_equal(read_video(ddim[0])[0], read_video(unipc[0])[0])


def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> Path:
    buffer = io.BytesIO()
    PIL.Image.new(mode, size).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("text file as image", "not a readable image"),
        ("decompression bomb", "megapixels are accepted"),
        ("no tracks", "no tracks"),
        ("broken JSON", "invalid JSON"),
        ("a path as trajectories", "must be JSON text"),
        ("track outside the frame", "outside the 96x64 image"),
        ("bad mode", "mode 'sideways'"),
        ("zero steps", "less than minimum value 1"),
    ],
)
def test_bad_requests_get_a_message_and_the_app_keeps_serving(client, image_path, tmp_path, case, message):
    image, trajectories, settings = image_path, RIGHT, {"steps": 1, "seed": 1}
    if case == "text file as image":
        image = tmp_path / "notes.png"
        image.write_text("hello")
    elif case == "decompression bomb":
        image = _png(tmp_path / "bomb.png", (30000, 30000), mode="1")
    elif case == "no tracks":
        trajectories = ""
    elif case == "broken JSON":
        trajectories = "[[[1, 2], [3"
    elif case == "a path as trajectories":
        trajectories = "/etc/passwd"
    elif case == "track outside the frame":
        trajectories = [[[1, 2], [500, 2]]]
    elif case == "bad mode":
        settings["mode"] = "sideways"
    elif case == "zero steps":
        settings["steps"] = 0
    with pytest.raises(AppError, match=re.escape(message)) as caught:
        _generate(client, image, trajectories, **settings)
    assert "Traceback" not in str(caught.value)
    # The server still answers a good request afterwards.
    assert Path(_generate(client, image_path, RIGHT, steps=1, seed=1)[0]).is_file()


def test_each_session_writes_to_its_own_folder(app_server, image_path, tmp_path):
    app, _ = app_server
    clients = [
        Client(app.local_url, verbose=False, download_files=str(tmp_path / str(i)), analytics_enabled=False)
        for i in range(2)
    ]
    before = {folder.name for folder in Path(app.output_root).iterdir()}
    for one in clients:
        _generate(one, image_path, RIGHT, steps=1, seed=3)
    folders = [folder for folder in Path(app.output_root).iterdir() if folder.name not in before]
    assert len(folders) == 2  # one per session, none shared
    for folder in folders:
        runs = list(folder.iterdir())
        assert len(runs) == 1 and (runs[0] / "video.mp4").is_file()


def test_generation_reports_every_step_and_stops_when_cancelled(app_server, image_path, tmp_path):
    _, pipe = app_server
    num_frames, _, _ = native_video_size(pipe)
    settings = check_settings(
        prompt="a ball",
        negative_prompt="",
        mode="object",
        steps=4,
        guidance_scale=7.5,
        camera_free_guidance=None,
        motion_guidance=1.0,
        num_frames=num_frames,
        seed=5,
    )
    tracks = TrajectorySet(RIGHT, image_size=(96, 64))
    image = PIL.Image.open(image_path)
    steps: list[tuple[int, int]] = []
    result = generate_video(
        pipe, image, tracks, settings, tmp_path / "done", on_step=lambda *s: steps.append(s)
    )
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert result.video.is_file() and result.seed == 5
    stopped: list[tuple[int, int]] = []
    with pytest.raises(Cancelled):
        generate_video(
            pipe,
            image,
            tracks,
            settings,
            tmp_path / "cancelled",
            on_step=lambda *s: stopped.append(s),
            should_stop=lambda: len(stopped) >= 2,
        )
    assert stopped == [(1, 4), (2, 4)]  # stopped right after the step that asked for it
    assert not (tmp_path / "cancelled").exists()
