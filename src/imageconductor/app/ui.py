"""The Gradio app: draw trajectories on the image, set the guidance, watch and download the result.

:func:`build_app` lays out the page and wires every control to a thin handler over the pure functions of
:mod:`imageconductor.app.state` (drawing), :mod:`~imageconductor.app.images` (uploads),
:mod:`~imageconductor.app.canvas` (arrows) and :mod:`~imageconductor.app.generation` (sampling). Drawing
state lives in ``gr.State`` (one per browser session), outputs in a per-session folder, and the model runs
through Gradio's queue one request at a time. The named endpoint ``/generate`` serves the page and API
clients alike.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from imageconductor.app import canvas as canvas_view
from imageconductor.app import state as drawing_ops
from imageconductor.app.generation import Cancelled, generate_video
from imageconductor.app.images import MAX_PIXELS, MAX_UPLOAD_BYTES, ImageError, model_frame, open_upload
from imageconductor.app.sessions import CancelFlags, SessionFiles
from imageconductor.app.settings import (
    MAX_FRAMES,
    MAX_STEPS,
    MODE_CHOICES,
    SettingsError,
    check_settings,
    default_settings,
    native_video_size,
    scheduler_choices,
)
from imageconductor.app.state import Drawing, DrawingError
from imageconductor.trajectories import CAMERA_PRESETS, MAX_TRACKS

__all__ = ["PRESET_CHOICES", "build_app", "free_port", "launch_app"]

#: Camera presets offered in the menu (any ``+`` combination may be typed).
PRESET_CHOICES = (
    *CAMERA_PRESETS,
    "pan_left+zoom_in",
    "pan_right+zoom_in",
    "pan_up+zoom_out",
    "pan_down+zoom_out",
)
#: Largest trajectory file accepted, in bytes.
MAX_TRAJECTORY_BYTES = 2 * 1024 * 1024
CLICK_PATH, CLICK_STATIC = "add to the current track", "static point"

_CSS = "#canvas img { cursor: crosshair; } .track-list { list-style: none; padding-left: 0; }"


def _theme() -> gr.themes.Base:
    """The default theme on the system's fonts (the page loads nothing from the internet)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


def _read_trajectory_upload(path: str | None) -> str:
    """The text of an uploaded trajectory file (UTF-8, at most MAX_TRAJECTORY_BYTES)."""
    if not path:
        raise DrawingError("no trajectory file received")
    file = Path(path)
    if file.stat().st_size > MAX_TRAJECTORY_BYTES:
        raise DrawingError(f"the trajectory file is over {MAX_TRAJECTORY_BYTES // 2**20} MiB")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise DrawingError("the trajectory file is not UTF-8 JSON text") from None


def build_app(
    pipeline: Any,
    *,
    max_tracks: int = MAX_TRACKS,
    max_queue: int = 64,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    output_root: str | Path | None = None,
    defaults: Mapping[str, float | str] | None = None,
    title: str = "Image Conductor",
) -> gr.Blocks:
    """The app as a ``gr.Blocks`` (queued, not launched) for an already loaded ``ImageConductorPipeline``.

    ``max_tracks`` caps the tracks a drawing may hold; ``max_queue`` the requests waiting for the model
    (the model itself runs one request at a time); ``max_upload_bytes`` / ``max_pixels`` the images
    accepted; outputs go to per-session folders under ``output_root`` (default: a new temporary folder,
    available as ``app.output_root``). The settings start at the model's defaults
    (:func:`~imageconductor.app.settings.default_settings`) with ``defaults`` over them (``steps``,
    ``guidance_scale``, ``motion_guidance``, ``scheduler``, ``frames``). The scheduler menu offers the
    schedulers that can sample the model (:func:`~imageconductor.app.settings.scheduler_choices`).
    """
    _, height, width = native_video_size(pipeline)
    start = default_settings(pipeline, defaults)
    schedulers = scheduler_choices(pipeline)
    num_frames = int(start["frames"])
    scale = canvas_view.display_scale(width)
    files = SessionFiles(output_root)
    flags = CancelFlags()
    # Gradio lets the next queued run start as soon as a run is cancelled, while the cancelled one still
    # finishes its current step in its thread: the lock keeps two runs off the one pipeline.
    pipeline_lock = threading.Lock()
    blank = canvas_view.blank_frame(width, height)
    empty = drawing_ops.new_drawing(width, height, max_tracks)

    # ------------------------------------------------------------------ views
    def view(drawing: Drawing, frame: np.ndarray | None) -> tuple:
        """Everything that shows the drawing: state, canvas, track list, JSON, track menu."""
        choices = [f"Track {index + 1}" for index in range(len(drawing.tracks))]
        current = None if drawing.current is None else choices[drawing.current]
        return (
            drawing,
            canvas_view.render(blank if frame is None else frame, drawing),
            canvas_view.describe_tracks(drawing),
            drawing_ops.export_json(drawing) if drawing.tracks else "",
            gr.Dropdown(choices=choices, value=current),
        )

    def guarded(operation: Callable[..., Drawing]) -> Callable[..., tuple]:
        """A handler applying ``operation(drawing, *args)``; a DrawingError becomes a warning in the page."""

        def handler(drawing: Drawing, frame: np.ndarray | None, *args: Any) -> tuple:
            try:
                drawing = operation(drawing, *args)
            except DrawingError as exc:
                gr.Warning(str(exc))
            return view(drawing, frame)

        return handler

    def click(drawing: Drawing, frame: np.ndarray | None, kind: str, click_mode: str, evt: gr.SelectData):
        x, y = canvas_view.click_to_point(evt.index, scale)
        add = drawing_ops.add_static_point if click_mode == CLICK_STATIC else drawing_ops.add_point
        return guarded(add)(drawing, frame, x, y, kind)

    def track_index(choice: str | None) -> int:
        if not choice:
            raise DrawingError("choose a track first")
        return int(choice.split()[-1]) - 1

    def select(drawing: Drawing, choice: str | None) -> Drawing:
        return drawing_ops.select_track(drawing, track_index(choice))

    def delete(drawing: Drawing, choice: str | None) -> Drawing:
        return drawing_ops.delete_track(drawing, track_index(choice))

    def change_kind(drawing: Drawing, kind: str) -> Drawing:
        if drawing.current is None:
            return drawing
        return drawing_ops.set_kind(drawing, drawing.current, kind)

    def preset(drawing: Drawing, name: str | None, frames: Any) -> Drawing:
        if not name:
            raise DrawingError("choose a camera preset first")
        try:
            count = int(frames)
        except (TypeError, ValueError):
            count = num_frames
        return drawing_ops.apply_camera_preset(drawing, name, max(2, count))

    def load_file(drawing: Drawing, path: str | None) -> Drawing:
        return drawing_ops.load_drawing(_read_trajectory_upload(path), width, height, max_tracks)

    def upload(path: str | None, drawing: Drawing) -> tuple:
        try:
            frame = model_frame(open_upload(path or "", max_upload_bytes, max_pixels), width, height)
        except ImageError as exc:
            gr.Warning(f"Image refused: {exc}")
            return None, None, canvas_view.render(blank, drawing), f"Image refused: {exc}"
        note = f"Image ready, shown as the model's {width}x{height} frame."
        return path, frame, canvas_view.render(frame, drawing), note

    def export(drawing: Drawing, request: gr.Request) -> list[str] | None:
        if not drawing.tracks:
            gr.Warning("no tracks to export yet")
            return None
        folder = files.new_run_dir(_session(request))
        rich = folder / "trajectories.json"
        official = folder / "trajectories.official.json"
        rich.write_text(drawing_ops.export_json(drawing), encoding="utf-8")
        official.write_text(drawing_ops.export_json(drawing, official=True), encoding="utf-8")
        return [str(rich), str(official)]

    # --------------------------------------------------------------- generation
    def generate(
        image: str | None,
        prompt: str,
        trajectories: str,
        mode: str = "auto",
        steps: float = start["steps"],
        seed: float | None = -1,
        negative_prompt: str = "",
        guidance_scale: float = start["guidance_scale"],
        camera_free_guidance: float | None = 0.0,
        motion_guidance: float = start["motion_guidance"],
        frames: float = num_frames,
        gif: bool = False,
        scheduler: str = start["scheduler"],
        drawing: Drawing | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's way to ask for a progress bar
    ) -> tuple:
        """The ``/generate`` endpoint: image file, prompt, trajectory JSON and settings -> MP4, side-by-side
        MP4, downloads, the seed used and a status line."""
        try:
            if not image:
                raise ImageError("upload an image first")
            first_frame = open_upload(image, max_upload_bytes, max_pixels)
            if not (trajectories or "").strip():
                raise DrawingError("no tracks: click on the image to draw at least one track")
            loaded = drawing_ops.load_drawing(trajectories, width, height, max_tracks)
            track_set = drawing_ops.to_trajectory_set(loaded)
            if drawing is not None and drawing.tracks and drawing_ops.to_trajectory_set(drawing) == track_set:
                loaded = drawing  # drawn in this page: keep the colours shown on the canvas
            settings = check_settings(
                prompt=prompt,
                negative_prompt=negative_prompt,
                mode=mode,
                steps=steps,
                guidance_scale=guidance_scale,
                camera_free_guidance=camera_free_guidance,
                motion_guidance=motion_guidance,
                num_frames=frames,
                seed=seed,
                scheduler=scheduler,
            )
            if settings.scheduler not in schedulers:
                raise SettingsError(
                    f"scheduler {settings.scheduler!r} cannot sample this model; choose one of "
                    f"{', '.join(schedulers)}"
                )
        except (ImageError, DrawingError, SettingsError) as exc:
            raise gr.Error(str(exc)) from None
        session = _session(request)
        flag = flags.start(session)
        progress((0, settings.steps), desc="Sampling", unit="steps")
        try:
            with pipeline_lock:
                result = generate_video(
                    pipeline,
                    first_frame,
                    track_set,
                    settings,
                    files.new_run_dir(session),
                    gif=bool(gif),
                    colors=[track.color for track in loaded.tracks],
                    on_step=lambda done, total: progress((done, total), desc="Sampling", unit="steps"),
                    should_stop=flag.is_set,
                )
        except Cancelled:
            raise gr.Error("cancelled") from None
        except ValueError as exc:
            raise gr.Error(" ".join(str(exc).split())[:500]) from None
        finally:
            flags.finish(session, flag)
        downloads = [str(result.video), str(result.side_by_side), *map(str, result.gifs)]
        status = (
            f"Done: {settings.steps} steps ({settings.scheduler}), {settings.num_frames} frames, "
            f"seed {result.seed}."
        )
        return str(result.video), str(result.side_by_side), downloads, result.seed, status

    def cancel(request: gr.Request) -> str:
        return "Cancelling ..." if flags.cancel(_session(request)) else "Nothing is running."

    def forget(request: gr.Request) -> None:
        files.forget(_session(request))

    # -------------------------------------------------------------------- layout
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        drawing_state = gr.State(empty)
        frame_state = gr.State(None)
        gr.Markdown(
            f"# {title}\nUpload an image, click on it to draw trajectories, press **Generate**. "
            f"The image is shown as the model's {width}x{height} frame, so the points you click are the "
            "points the model gets."
        )
        with gr.Row():
            with gr.Column(scale=3):
                canvas = gr.Image(
                    value=canvas_view.render(blank, empty),
                    label="Drawing: click to add points",
                    interactive=False,
                    format="png",
                    buttons=[],
                    elem_id="canvas",
                )
                track_list = gr.HTML(canvas_view.describe_tracks(empty), elem_id="track-list")
                with gr.Row():
                    kind = gr.Radio(["object", "camera"], value="object", label="Kind of the current track")
                    click_mode = gr.Radio([CLICK_PATH, CLICK_STATIC], value=CLICK_PATH, label="A click")
                with gr.Row():
                    new_track = gr.Button("New track", elem_id="new-track")
                    undo = gr.Button("Undo point", elem_id="undo")
                    clear = gr.Button("Clear all", elem_id="clear")
                with gr.Row():
                    track_menu = gr.Dropdown([], value=None, label="Track", allow_custom_value=False)
                    delete_button = gr.Button("Delete track", elem_id="delete-track")
                with gr.Row():
                    preset_menu = gr.Dropdown(
                        list(PRESET_CHOICES),
                        value=None,
                        label="Camera preset (replaces the camera tracks)",
                        allow_custom_value=True,
                    )
                    preset_button = gr.Button("Apply preset", elem_id="apply-preset")
                with gr.Accordion("Tracks in and out", open=False):
                    trajectories = gr.Textbox(
                        "",
                        label="Tracks (project JSON; pixels of the model frame)",
                        lines=6,
                        max_lines=16,
                        interactive=False,
                        elem_id="trajectories",
                    )
                    trajectory_file = gr.File(
                        label="Load a trajectory file (any format `imageconductor trajectories` reads)",
                        file_types=[".json"],
                        type="filepath",
                    )
                    export_button = gr.Button("Export tracks (project JSON and official list)")
                    exports = gr.File(label="Exported tracks", file_count="multiple", interactive=False)
            with gr.Column(scale=2):
                image = gr.File(
                    label="Image (any format Pillow reads)",
                    file_types=["image"],
                    type="filepath",
                    elem_id="image-upload",
                )
                prompt = gr.Textbox("", label="Prompt", lines=2, elem_id="prompt")
                negative_prompt = gr.Textbox("", label="Negative prompt", lines=1)
                mode = gr.Dropdown(
                    list(MODE_CHOICES),
                    value="auto",
                    label="Mode",
                    info="auto: camera for camera-only tracks, else object; or type a blend like camera=1,object=0.5",
                    allow_custom_value=True,
                )
                steps = gr.Slider(
                    1, MAX_STEPS, value=int(start["steps"]), step=1, label="Steps", elem_id="steps"
                )
                scheduler = gr.Dropdown(
                    schedulers,
                    value=start["scheduler"],
                    label="Scheduler",
                    info="ddim: the released sampler; dpm++2m and unipc are higher-order solvers",
                    elem_id="scheduler",
                )
                frames = gr.Slider(2, MAX_FRAMES, value=num_frames, step=1, label="Frames")
                guidance_scale = gr.Number(start["guidance_scale"], label="CFG scale (1 or less: off)")
                camera_free = gr.Number(0.0, minimum=0, label="Camera-free guidance λ_traj (0: off)")
                motion_guidance = gr.Number(
                    start["motion_guidance"], minimum=0, label="Motion guidance (1: off)"
                )
                seed = gr.Number(-1, precision=0, label="Seed (-1: random)", elem_id="seed")
                gif = gr.Checkbox(False, label="Also write GIFs")
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
                status = gr.Markdown("", elem_id="status")
                video = gr.Video(label="Video", interactive=False, elem_id="result-video")
                panel = gr.Video(label="Side by side: video | tracks drawn", interactive=False)
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False)
                seed_used = gr.Number(None, precision=0, label="Seed used", interactive=False)

        # ------------------------------------------------------------------ events
        # Drawing events: every click is kept (trigger_mode="multiple"; no progress overlay covers the
        # canvas between clicks) and one session's events run one after the other in order (one shared
        # concurrency slot), so each sees the state the last one left.
        drawing_event: dict[str, Any] = {
            "api_visibility": "private",
            "show_progress": "hidden",
            "trigger_mode": "multiple",
            "concurrency_id": "drawing",
            "concurrency_limit": 1,
        }
        shown = [drawing_state, canvas, track_list, trajectories, track_menu]
        with_frame = [drawing_state, frame_state]
        canvas.select(click, [*with_frame, kind, click_mode], shown, **drawing_event)
        new_track.click(guarded(drawing_ops.start_new_track), with_frame, shown, **drawing_event)
        undo.click(guarded(drawing_ops.undo_point), with_frame, shown, **drawing_event)
        clear.click(guarded(drawing_ops.clear_tracks), with_frame, shown, **drawing_event)
        delete_button.click(guarded(delete), [*with_frame, track_menu], shown, **drawing_event)
        track_menu.input(guarded(select), [*with_frame, track_menu], shown, **drawing_event)
        kind.input(guarded(change_kind), [*with_frame, kind], shown, **drawing_event)
        preset_button.click(guarded(preset), [*with_frame, preset_menu, frames], shown, **drawing_event)
        trajectory_file.upload(guarded(load_file), [*with_frame, trajectory_file], shown, **drawing_event)
        export_button.click(export, [drawing_state], exports, **drawing_event)
        image.upload(upload, [image, drawing_state], [image, frame_state, canvas, status], **drawing_event)
        image.clear(
            lambda drawing: (None, canvas_view.render(blank, drawing), ""),
            [drawing_state],
            [frame_state, canvas, status],
            **drawing_event,
        )
        run = generate_button.click(
            generate,
            [
                image,
                prompt,
                trajectories,
                mode,
                steps,
                seed,
                negative_prompt,
                guidance_scale,
                camera_free,
                motion_guidance,
                frames,
                gif,
                scheduler,
                drawing_state,
            ],
            [video, panel, downloads, seed_used, status],
            api_name="generate",
            concurrency_limit=1,
            concurrency_id="model",
        )
        cancel_button.click(cancel, None, status, cancels=[run], queue=False, api_visibility="private")
        app.unload(forget)
    app.queue(max_size=max_queue)
    app.output_root = files.root
    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now (for tests and ``--port 0``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def launch_app(
    pipeline: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    block: bool = True,
    quiet: bool = False,
    **options: Any,
) -> gr.Blocks:
    """Build the app for ``pipeline`` (see :func:`build_app`, which takes ``options``) and serve it on
    ``host:port`` (port 0: a free one). With ``block=False`` it returns at once, serving in the background
    (``app.local_url`` is the address; ``app.close()`` stops it)."""
    app = build_app(pipeline, **options)
    max_bytes = options.get("max_upload_bytes", MAX_UPLOAD_BYTES)
    app.launch(
        server_name=host,
        server_port=port or free_port(host),
        share=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        max_file_size=int(max_bytes) + 1,
        allowed_paths=[str(app.output_root)],
        ssr_mode=False,
        footer_links=["api"],
        theme=_theme(),
        css=_CSS,
    )
    return app
