"""The app's pure parts: drawing state, uploads, canvas, settings (no Gradio server, no model)."""

from __future__ import annotations

import io
import json

import numpy as np
import PIL.Image
import pytest

from imageconductor.app import canvas, state
from imageconductor.app.images import ImageError, model_frame, open_upload
from imageconductor.app.settings import (
    SettingsError,
    check_settings,
    default_settings,
    native_video_size,
    parse_mode_text,
)
from imageconductor.app.state import DrawingError
from imageconductor.overlay import track_colors
from imageconductor.pipelines.image_conductor import prepare_first_frame
from imageconductor.trajectories import TrajectorySet, camera_trajectories, load_trajectories

W, H = 96, 64


def _points(drawing):
    return [list(track.points) for track in drawing.tracks]


# ------------------------------------------------------------------------------------------ drawing
def test_clicks_build_tracks_and_new_track_starts_another():
    drawing = state.new_drawing(W, H)
    drawing = state.add_point(drawing, 10, 20)
    drawing = state.add_point(drawing, 30, 25.5)
    assert _points(drawing) == [[(10.0, 20.0), (30.0, 25.5)]]
    assert drawing.current == 0
    drawing = state.start_new_track(drawing)
    assert drawing.current is None
    drawing = state.add_point(drawing, 50, 5, kind="camera")
    drawing = state.add_point(drawing, 60, 6)  # extends the current (camera) track
    assert _points(drawing) == [[(10.0, 20.0), (30.0, 25.5)], [(50.0, 5.0), (60.0, 6.0)]]
    assert [track.kind for track in drawing.tracks] == ["object", "camera"]
    assert [track.color for track in drawing.tracks] == track_colors(2)
    # Clicks on the border land inside the frame.
    drawing = state.add_point(drawing, 500, -3)
    assert drawing.tracks[1].points[-1] == (W - 1.0, 0.0)


def test_undo_removes_the_last_point_then_the_track():
    drawing = state.add_point(state.add_point(state.new_drawing(W, H), 1, 2), 3, 4)
    drawing = state.add_static_point(drawing, 7, 8)
    assert drawing.current is None
    drawing = state.undo_point(drawing)  # no current track: undo works on the last one (the static point)
    assert _points(drawing) == [[(1.0, 2.0), (3.0, 4.0)]]
    drawing = state.undo_point(state.select_track(drawing, 0))
    assert _points(drawing) == [[(1.0, 2.0)]]
    assert drawing.current == 0
    drawing = state.undo_point(drawing)
    assert drawing.tracks == () and drawing.current is None
    with pytest.raises(DrawingError, match="nothing to undo"):
        state.undo_point(drawing)


def test_static_point_is_a_one_point_track_that_the_pipeline_accepts():
    drawing = state.add_static_point(state.new_drawing(W, H), 40, 30)
    drawing = state.add_static_point(drawing, 41, 31)
    assert [track.is_static for track in drawing.tracks] == [True, True]
    assert _points(drawing) == [[(40.0, 30.0)], [(41.0, 31.0)]]
    trajectories = state.to_trajectory_set(drawing)
    assert trajectories.image_size == (W, H)
    assert [track.tolist() for track in trajectories.tracks] == [[[40.0, 30.0]], [[41.0, 31.0]]]


def test_delete_keeps_colours_and_clear_empties():
    drawing = state.new_drawing(W, H)
    for x in (10, 20, 30):
        drawing = state.add_static_point(drawing, x, 10)
    drawing = state.select_track(drawing, 2)
    drawing = state.delete_track(drawing, 0)
    assert _points(drawing) == [[(20.0, 10.0)], [(30.0, 10.0)]]
    assert [track.color for track in drawing.tracks] == track_colors(3)[1:]
    assert drawing.current == 1  # the current track followed its new index
    drawing = state.add_static_point(drawing, 40, 10)
    assert drawing.tracks[-1].color == track_colors(4)[3]  # a colour not used before
    cleared = state.clear_tracks(drawing)
    assert cleared == state.new_drawing(W, H)
    with pytest.raises(DrawingError, match="no track 5"):
        state.delete_track(drawing, 4)


def test_track_limit_has_a_clear_message():
    drawing = state.new_drawing(W, H, max_tracks=2)
    drawing = state.add_static_point(state.add_static_point(drawing, 1, 1), 2, 2)
    with pytest.raises(DrawingError, match="at most 2 tracks"):
        state.add_point(drawing, 3, 3)
    with pytest.raises(DrawingError, match="at most 2 tracks"):
        state.add_static_point(drawing, 3, 3)


def test_kind_change_and_empty_export():
    drawing = state.set_kind(state.add_point(state.new_drawing(W, H), 5, 5), 0, "camera")
    assert drawing.tracks[0].kind == "camera"
    with pytest.raises(DrawingError, match="object or camera"):
        state.set_kind(drawing, 0, "person")
    with pytest.raises(DrawingError, match="at least one track"):
        state.export_json(state.new_drawing(W, H))


def test_camera_preset_replaces_camera_tracks_and_keeps_object_tracks():
    drawing = state.add_point(state.add_point(state.new_drawing(W, H), 10, 10), 20, 12)
    drawing = state.add_static_point(drawing, 80, 50, kind="camera")
    drawing = state.apply_camera_preset(drawing, "pan_left", num_frames=8)
    # One object track leaves 7 slots: the 3x3 grid (8 tracks) does not fit, the 2x2 grid (4) does.
    expected = camera_trajectories("pan_left", 8, H, W, grid=(2, 2))
    assert [track.kind for track in drawing.tracks] == ["object"] + ["camera"] * 4
    assert _points(drawing)[0] == [(10.0, 10.0), (20.0, 12.0)]
    for track, reference in zip(drawing.tracks[1:], expected.tracks, strict=True):
        np.testing.assert_allclose(track.points, reference)
        assert track.points[-1][0] < track.points[0][0]  # every point moves left
    # On an empty drawing the full 3x3 grid is used; a second preset replaces the first.
    full = state.apply_camera_preset(state.new_drawing(W, H), "zoom_in", 8)
    assert len(full.tracks) == 8
    again = state.apply_camera_preset(full, "pan_up", 8)
    assert len(again.tracks) == 8
    np.testing.assert_allclose(again.tracks[0].points, camera_trajectories("pan_up", 8, H, W).tracks[0])
    with pytest.raises(DrawingError, match="unknown camera preset"):
        state.apply_camera_preset(full, "barrel_roll", 8)


def test_load_and_export_round_trip_in_both_formats():
    drawing = state.add_point(state.add_point(state.new_drawing(W, H), 10.5, 20), 30, 40)
    drawing = state.add_static_point(drawing, 70, 15, kind="camera")
    rich = state.export_json(drawing)
    official = state.export_json(drawing, official=True)
    assert json.loads(official) == [[[10.5, 20.0], [30.0, 40.0]], [[70.0, 15.0]]]
    back = state.load_drawing(rich, W, H)
    assert _points(back) == _points(drawing)
    assert [t.kind for t in back.tracks] == ["object", "camera"]
    assert state.to_trajectory_set(back) == load_trajectories(rich)
    # The official list holds pixels of the model frame and has no kinds (object by default).
    back_official = state.load_drawing(official, W, H)
    assert _points(back_official) == _points(drawing)
    assert [t.kind for t in back_official.tracks] == ["object", "object"]
    # A rich file made for another frame size is rescaled to the model frame.
    bigger = TrajectorySet([[[20.0, 40.0], [60.0, 80.0]]], ["object"], [0.5], (W * 2, H * 2))
    scaled = state.load_drawing(bigger.to_json(), W, H)
    assert _points(scaled) == [[(10.0, 20.0), (30.0, 40.0)]]
    assert scaled.tracks[0].strength == 0.5
    assert state.to_trajectory_set(scaled).strengths == [0.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "JSON text"),
        ("/etc/passwd", "JSON text"),
        ("[[[1, 2], [3", "invalid JSON"),
        ('{"tracks": []}', "no tracks"),
        ("[[[1, 2], [500, 2]]]", "outside the 96x64 image"),
        (json.dumps([[[1, 1]]] * 9), "at most 8"),
    ],
)
def test_bad_trajectory_text_is_refused_with_a_message(text, message):
    with pytest.raises(DrawingError, match=message):
        state.load_drawing(text, W, H)


# ------------------------------------------------------------------------------------------ canvas
def test_canvas_draws_each_track_where_it_was_clicked():
    frame = np.full((H, W, 3), 128, np.uint8)
    scale = canvas.display_scale(W)
    assert scale == 7  # 96 px enlarged to about 640
    click = (350, 210)  # a click on the enlarged canvas ...
    x, y = canvas.click_to_point(click, scale)
    assert (x, y) == (50.0, 30.0)  # ... is a point of the model frame
    drawing = state.add_static_point(state.new_drawing(W, H), x, y)
    drawing = state.add_point(drawing, 10, 10, kind="camera")
    drawing = state.add_point(drawing, 40, 10)
    image = canvas.render(frame, drawing)
    assert image.shape == (H * scale, W * scale, 3)
    assert tuple(image[click[1], click[0]]) == drawing.tracks[0].color
    assert tuple(image[10 * scale, 40 * scale]) == drawing.tracks[1].color  # arrow head end
    assert (image[5:20, 5:20] == 128).all()  # away from every track the frame shows unchanged
    assert (canvas.render(frame, state.new_drawing(W, H)) == 128).all()
    listing = canvas.describe_tracks(drawing)
    assert "Track 1: object, static point" in listing
    assert "Track 2: camera, 2 points &larr; clicks add here" in listing
    assert 'data-points="3"' in listing


# ------------------------------------------------------------------------------------------ images
def _png_bytes(image: PIL.Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=params.pop("format", "PNG"), **params)
    return buffer.getvalue()


def test_upload_honours_exif_orientation(tmp_path):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)  # the left third is red
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the picture rotated 90° clockwise
    path = tmp_path / "photo.jpg"
    path.write_bytes(_png_bytes(PIL.Image.fromarray(pixels), format="JPEG", exif=exif, quality=95))
    upright = np.asarray(open_upload(path))
    assert upright.shape == (30, 20, 3)
    assert upright[:8, :, 0].mean() > 200 and upright[-8:, :, 0].mean() < 50  # red is now on top


def test_model_frame_is_what_the_pipeline_encodes():
    rng = np.random.default_rng(0)
    image = PIL.Image.fromarray(rng.integers(0, 256, (150, 170, 3), dtype=np.uint8))
    frame = model_frame(image, W, H)
    assert frame.shape == (H, W, 3)
    expected = prepare_first_frame(image, H, W)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(frame / 255.0 * 2 - 1, expected, atol=1e-6)
    # Encoding the shown frame again gives the same pixels (the crop is already exact).
    np.testing.assert_allclose(
        prepare_first_frame(PIL.Image.fromarray(frame), H, W)[0].numpy(),
        expected.transpose(2, 0, 1),
        atol=1e-6,
    )


def test_bad_uploads_are_refused_with_a_message(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(ImageError, match="not a readable image"):
        open_upload(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        open_upload(empty)
    big = tmp_path / "big.png"
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    big.write_bytes(_png_bytes(PIL.Image.fromarray(noise)))
    with pytest.raises(ImageError, match="MiB"):
        open_upload(big, max_bytes=100)
    with pytest.raises(ImageError, match="megapixels"):
        open_upload(big, max_pixels=1000)
    # Decompression bombs: tiny files whose headers claim huge images are refused before decoding, by
    # the app's limit (64 megapixels here) or, far beyond it, already by Pillow when it opens the header.
    for side, message in ((8000, "8000x8000 \\(64 megapixels\\)"), (30000, "up to 40 megapixels")):
        bomb = tmp_path / f"bomb{side}.png"
        bomb.write_bytes(_png_bytes(PIL.Image.new("1", (side, side))))
        assert bomb.stat().st_size < 200_000
        with pytest.raises(ImageError, match=message):
            open_upload(bomb)
    with pytest.raises(ImageError, match="no image"):
        open_upload(tmp_path / "missing.png")


# ------------------------------------------------------------------------------------------ settings
def test_mode_text_and_settings_are_checked():
    assert parse_mode_text("auto") is None and parse_mode_text("") is None
    assert parse_mode_text(" Camera ") == "camera"
    assert parse_mode_text("camera=1,object=0.5") == {"camera": 1.0, "object": 0.5}
    for bad, message in (
        ("wobble", "use auto"),
        ("camera=x", "must be a number"),
        ("person=1", "unknown adapter"),
    ):
        with pytest.raises(SettingsError, match=message):
            parse_mode_text(bad)
    base = dict(
        prompt=" a cat ",
        negative_prompt="",
        mode="object",
        steps=3,
        guidance_scale=7.5,
        camera_free_guidance=None,
        motion_guidance=1.0,
        num_frames=8,
        seed=None,
    )
    settings = check_settings(**base)
    assert settings.prompt == "a cat" and settings.negative_prompt is None
    assert 0 <= settings.seed < 2**31
    assert check_settings(**{**base, "seed": 42.0, "camera_free_guidance": "1.5"}).seed == 42
    assert check_settings(**{**base, "camera_free_guidance": 1.5}).camera_free_guidance == 1.5
    # The page's number boxes cannot be empty: 0 turns camera-free guidance off, -1 draws a seed.
    assert check_settings(**{**base, "camera_free_guidance": 0}).camera_free_guidance is None
    seeds = {check_settings(**{**base, "seed": -1}).seed for _ in range(5)}
    assert len(seeds) > 1 and all(0 <= seed < 2**31 for seed in seeds)
    for change, message in (
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"num_frames": 1}, "frames"),
        ({"motion_guidance": -1}, "motion guidance"),
        ({"guidance_scale": float("nan")}, "CFG"),
        ({"mode": "none", "camera_free_guidance": 1.0}, "not none"),
    ):
        with pytest.raises(SettingsError, match=message):
            check_settings(**{**base, **change})


def test_native_video_size_reads_the_model_config_else_the_release():
    class Pipe:
        def __init__(self, config):
            self.config = config

    native = {"native_size": {"num_frames": 4, "height": 32, "width": 48}}
    assert native_video_size(Pipe(native)) == (4, 32, 48)
    assert native_video_size(Pipe({})) == (16, 256, 384)


def test_default_settings_follow_the_model_then_the_overrides():
    class Pipe:
        def __init__(self, config):
            self.config = config

    native = {"native_size": {"num_frames": 4, "height": 32, "width": 48}}
    assert default_settings(Pipe(native)) == {
        "steps": 25,
        "guidance_scale": 7.5,
        "motion_guidance": 1.0,
        "scheduler": "ddim",
        "frames": 4,
    }
    assert default_settings(Pipe(native), {"steps": 10, "guidance_scale": 1.0, "scheduler": "unipc"}) == {
        "steps": 10,
        "guidance_scale": 1.0,
        "motion_guidance": 1.0,
        "scheduler": "unipc",
        "frames": 4,
    }
    with pytest.raises(SettingsError, match="unknown default setting"):
        default_settings(Pipe(native), {"sharpness": 3})
