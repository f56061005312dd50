"""The web app in a real browser: Playwright drives Debian's chromium (installed with apt, not Playwright's
download). Upload an image, click two tracks, generate with few steps, see the video; a second browser
context starts from an empty drawing. The screenshot it takes is the one the README shows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from imageconductor.app.canvas import display_scale
from imageconductor.app.settings import native_video_size

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "app.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds for page loads and UI updates, and for one generation with two steps.
UI_TIMEOUT, GENERATE_TIMEOUT = 60_000, 180_000
#: True once the canvas shows a loaded picture.
CANVAS_LOADED = "(() => { const image = document.querySelector('#canvas img'); return !!image && image.complete && image.naturalWidth > 0; })()"


def _chromium() -> str:
    """Debian's chromium; the test fails (it does not skip) when it is missing."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "chromium is not installed, so the browser test cannot run: install Debian's chromium with "
        "`apt-get update && apt-get install -y chromium` (Playwright's own browser download is not used)"
    )


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=UI_TIMEOUT
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    """A landscape photo-like test image (a sky gradient over a field, a red ball)."""
    yy, xx = np.mgrid[0:300, 0:480].astype(float)
    sky = np.stack([90 + yy * 0.3, 150 + yy * 0.2, 235 - yy * 0.2], axis=-1)
    field = np.stack([60 + 20 * np.sin(xx / 15), 140 + 30 * np.cos(yy / 11), 50 + 0 * xx], axis=-1)
    image = np.where((yy > 170)[..., None], field, sky)
    image[(xx - 150) ** 2 + (yy - 200) ** 2 < 35**2] = (220, 40, 40)
    path = tmp_path_factory.mktemp("app-browser") / "field.png"
    PIL.Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


def _open(context, url: str):
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT)
    page.goto(url, timeout=UI_TIMEOUT)
    page.wait_for_selector("#canvas img")
    return page


def _click(page, canvas, x: float, y: float) -> None:
    """Click the canvas at on-screen ``(x, y)`` and wait until the drawing holds one more point. (While the
    canvas picture is being replaced Gradio cannot map a click to pixels and drops it, so clicks are
    made at a person's pace: after the previous one has shown.)"""
    count = "document.querySelector('#track-list .track-list')?.dataset.points ?? '0'"
    before = int(page.evaluate(count))
    canvas.click(position={"x": x, "y": y})
    page.wait_for_function(f"Number({count}) > {before}")


def _tracks_json(page) -> str:
    """The Tracks box (opening its accordion if needed)."""
    box = page.locator("#trajectories textarea")
    if not box.count():
        page.get_by_text("Tracks in and out").click()
    return box.input_value()


def test_draw_two_tracks_generate_and_sessions_are_separate(app_server, browser, picture):
    app, pipe = app_server
    num_frames, height, width = native_video_size(pipe)
    scale = display_scale(width)
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = _open(context, app.local_url)

    page.locator("#image-upload input[type=file]").set_input_files(str(picture))
    page.wait_for_function("document.querySelector('#status').innerText.includes('Image ready')")
    page.wait_for_function(CANVAS_LOADED)
    canvas = page.locator("#canvas img")
    natural = canvas.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert natural == [width * scale, height * scale]  # the model frame, enlarged by a whole factor

    # Two tracks: the ball rolls right, a point in the sky drifts left. Clicks are in on-screen pixels.
    box = canvas.bounding_box()
    clicks = [[(0.30, 0.65), (0.45, 0.62), (0.60, 0.66)], [(0.80, 0.20), (0.65, 0.22)]]
    for number, track in enumerate(clicks):
        if number:
            page.locator("#new-track").click()
        for fx, fy in track:
            _click(page, canvas, fx * box["width"], fy * box["height"])
    page.wait_for_function(
        "document.querySelector('#track-list').innerText.includes('Track 2: object, 2 points')"
    )
    drawn = json.loads(_tracks_json(page))
    assert drawn["image_size"] == [width, height]
    points = [track["points"] for track in drawn["tracks"]]
    expected = [[(fx * width, fy * height) for fx, fy in track] for track in clicks]
    assert [len(track) for track in points] == [3, 2]
    for got_track, want_track in zip(points, expected, strict=True):
        for got, want in zip(got_track, want_track, strict=True):
            assert np.allclose(got, want, atol=1.5 / scale + 0.01), (got, want)  # within a screen pixel or so

    page.locator("#steps input[type=number]").fill("2")
    page.locator("#steps input[type=number]").press("Enter")
    page.locator("#seed input").fill("11")
    page.locator("#seed input").press("Enter")
    page.locator("#prompt textarea").fill("a red ball rolls across a field")
    page.locator("#generate").click()
    page.wait_for_selector("#result-video video[src]", timeout=GENERATE_TIMEOUT)
    page.wait_for_function("document.querySelector('#status').innerText.includes('seed 11')")
    assert "Done: 2 steps" in page.locator("#status").inner_text()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Another browser (a separate session) starts empty, and what it draws stays out of the first one.
    other_context = browser.new_context(viewport={"width": 1400, "height": 1100})
    other = _open(other_context, app.local_url)
    assert "No tracks yet" in other.locator("#track-list").inner_text()
    assert _tracks_json(other) == ""
    _click(other, other.locator("#canvas img"), 20, 20)
    other.wait_for_function("document.querySelector('#track-list').innerText.includes('Track 1')")
    assert "1 of 8 tracks" in other.locator("#track-list").inner_text()
    assert "2 of 8 tracks" in page.locator("#track-list").inner_text()
    assert len(json.loads(_tracks_json(page))["tracks"]) == 2
    other_context.close()
    context.close()


def test_bad_upload_undo_and_cancel_in_the_page(app_server, browser, picture, tmp_path):
    app, _ = app_server
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = _open(context, app.local_url)
    status = page.locator("#status")
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a picture")
    page.locator("#image-upload input[type=file]").set_input_files(str(fake))
    page.wait_for_function("document.querySelector('#status').innerText.includes('Image refused')")
    assert "not a readable image" in status.inner_text()
    # The page keeps working: a real image is taken, clicks draw, undo takes the last point back.
    page.locator("#image-upload input[type=file]").set_input_files(str(picture))
    page.wait_for_function("document.querySelector('#status').innerText.includes('Image ready')")
    page.wait_for_function(CANVAS_LOADED)
    canvas = page.locator("#canvas img")
    for x in (60, 120, 180, 240, 300):
        _click(page, canvas, x, 150)
    page.wait_for_function("document.querySelector('#track-list').innerText.includes('5 points')")
    page.locator("#undo").click()
    page.wait_for_function("document.querySelector('#track-list').innerText.includes('4 points')")
    (track,) = json.loads(_tracks_json(page))["tracks"]
    scale = canvas.evaluate("image => image.naturalWidth") / canvas.bounding_box()["width"]
    scale /= display_scale(native_video_size(app_server[1])[2])
    assert np.allclose(
        [point[0] for point in track["points"]], np.array([60, 120, 180, 240]) * scale, atol=0.5
    )
    # A long run is cancelled from the page: its session's flag is raised and no video arrives.
    page.locator("#steps input[type=number]").fill("100")
    page.locator("#steps input[type=number]").press("Enter")
    page.locator("#generate").click()
    page.wait_for_selector("#result-video .progress-text, #result-video .progress-bar", timeout=UI_TIMEOUT)
    page.locator("#cancel").click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('Cancelling')")
    assert page.locator("#result-video video[src]").count() == 0
    # The next run gets the pipeline once the cancelled one has stopped (after its current step).
    page.locator("#steps input[type=number]").fill("1")
    page.locator("#steps input[type=number]").press("Enter")
    page.locator("#generate").click()
    page.wait_for_selector("#result-video video[src]", timeout=GENERATE_TIMEOUT)
    assert "Done: 1 steps" in status.inner_text()
    context.close()
