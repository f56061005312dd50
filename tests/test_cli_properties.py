"""Property-based tests of the command line's argument space (hypothesis).

Random flags and values, good and bad, for ``generate`` (the embedded default model, one step, tiny
sizes), ``trajectories check/convert/preset`` and ``curate --dry-run``. Whatever is drawn, the command
exits with 0 or 2, never with a traceback, and leaves no file in the output folder besides the outputs
it reports on success.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageconductor.cli import main
from imageconductor.video_io import write_mp4
from imageconductor.video_outputs import output_paths

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "imageconductor" / "assets" / "examples"
COMMON_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
NUMBERS = ["0", "-1", "nan", "inf", "-inf", "1e308", "2.5", "abc", ""]


def _option(flag: str, good: list[str], bad: list[str] = NUMBERS) -> st.SearchStrategy[list[str]]:
    """Nothing, ``flag`` with a usable value, or ``flag`` with a value drawn from ``bad``."""
    return st.one_of(
        st.just([]),
        st.sampled_from(good).map(lambda value: [flag, value]),
        st.sampled_from(bad).map(lambda value: [flag, value]),
    )


def _draw_options(draw, table: list[tuple], required: tuple[str, ...] = ()) -> list[str]:
    """Options of ``table`` (flag, good values, bad values); the ``required`` flags are always given.
    Half the examples get at most one bad value, so that each check is reached with everything else right
    (and the run gets as deep as it can go); the other half draw every option freely."""
    faulty = draw(st.sampled_from([None, "any", *[flag for flag, _, _ in table]]))
    argv: list[str] = []
    for flag, good, bad in table:
        given = [] if flag in required else [st.just([])]
        if flag == faulty or (faulty == "any" and draw(st.booleans())):
            argv += [flag, draw(st.sampled_from(bad))]
        else:
            argv += draw(st.one_of(*given, st.sampled_from(good).map(lambda value, f=flag: [f, value])))
    return argv


def _run(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process and return (status, stdout, stderr) after checking the properties every
    command has: status 0 or 2 (argparse's SystemExit counts as its status), no traceback, and one
    ``error:`` line on failure."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    assert status in (0, 2), (argv, status, err.getvalue())
    assert "Traceback" not in err.getvalue(), err.getvalue()
    if status == 2:
        assert len([line for line in err.getvalue().splitlines() if "error:" in line]) == 1, err.getvalue()
    return status, out.getvalue(), err.getvalue()


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@contextlib.contextmanager
def _workspace() -> Iterator[dict[str, Path]]:
    """A temporary folder with inputs good and bad; the commands write into its ``"out"`` folder."""
    with tempfile.TemporaryDirectory() as folder:
        yield _inputs(Path(folder))


def _inputs(root: Path) -> dict[str, Path]:
    (root / "out").mkdir()
    (root / "a folder").mkdir()
    (root / "notes.txt").write_text("not an image, not JSON\n")
    official = [[[10.0, 20.0], [30.0, 25.0], [50.0, 40.0]], [[80.0, 60.0], [70.0, 50.0]]]
    (root / "official.json").write_text(json.dumps(official))
    (root / "outside.json").write_text(json.dumps([[[5000.0, 1.0], [1.0, 1.0]]]))
    return {
        "root": root,
        "out": root / "out",
        "image": EXAMPLES / "object_first_frame.png",
        "rich": EXAMPLES / "object_trajectory.json",
        "official": root / "official.json",
        "outside": root / "outside.json",
        "folder": root / "a folder",
        "text": root / "notes.txt",
        "missing": root / "missing.json",
    }


@st.composite
def generate_argv(draw, files: dict[str, Path], out: Path) -> list[str]:
    prompt = draw(st.text(alphabet="ab ,.é\n", max_size=12) | st.just("car " * 60))
    argv = ["generate", "--prompt", prompt]
    required = ("--image", "--trajectories", "--out", "--steps")
    images = [str(files[name]) for name in ("folder", "text", "missing")]
    tracks = [str(files[name]) for name in ("outside", "text", "folder")]
    outs = [str(out / name) for name in ("clip.avi", "no/such/clip.mp4", ".")]
    argv += _draw_options(
        draw,
        [
            ("--image", [str(files["image"])], images),
            ("--trajectories", [str(files["rich"]), str(files["official"])], tracks),
            ("--out", [str(out / "clip.mp4")], outs),
            ("--steps", ["1"], ["0", "-1", "1001", "x"]),
            ("--num-frames", ["2"], ["1", "0", "100000", "x"]),
            ("--height", ["16", "24"], ["7", "0", "-8", "100000"]),
            ("--width", ["16"], ["12", "0", "100000"]),
            ("--fps", ["8", "2.5"], NUMBERS),
            ("--seed", ["0", "12"], ["-1", str(2**63), "x", "1.5"]),
            ("--guidance-scale", ["7.5", "1"], NUMBERS),
            ("--motion-guidance", ["1", "2"], NUMBERS),
            ("--camera-free-guidance", ["1.5"], NUMBERS),
            ("--flow-scale", ["1", "0"], NUMBERS),
            ("--mode", ["object", "camera", "camera=1,object=0.5"], ["sideways", "camera=", "none"]),
            ("--device", ["cpu"], ["cuda:9", "tpu", ""]),
            ("--trajectory-size", ["384x256", "96x64"], ["0x0", "10x10", "x", "384"]),
        ],
        required,
    )
    argv += draw(st.sampled_from([[], ["--gif"], ["--no-side-by-side"], ["--gif", "--no-side-by-side"]]))
    if "--num-frames" not in argv:  # keep every run small: the model's native size takes much longer
        argv += ["--num-frames", "2"]
    if "--height" not in argv:
        argv += ["--height", "16"]
    if "--width" not in argv:
        argv += ["--width", "16"]
    return argv


def _check_generate(data: st.DataObject) -> None:
    with _workspace() as files:
        out = files["out"]
        argv = data.draw(generate_argv(files, out))
        status, _, _ = _run(argv)
        written = _files(out)
        if status == 0:
            paths = output_paths(out / "clip.mp4")
            expected = {"mp4"}
            if "--gif" in argv:
                expected.add("gif")
            if "--no-side-by-side" not in argv:
                expected |= {"side_by_side", "side_by_side_gif"} if "--gif" in argv else {"side_by_side"}
            assert written == {paths[name].name for name in expected}, (argv, written)
        else:
            assert written == set(), (argv, written)


@settings(max_examples=25, **COMMON_SETTINGS)
@given(data=st.data())
def test_generate_exits_0_or_2_without_traceback_or_stray_files(data):
    """About a third of the drawn runs are valid and generate (1 step, 2 x 16 x 16): a few seconds each."""
    _check_generate(data)


@pytest.mark.slow
@settings(max_examples=100, **COMMON_SETTINGS)
@given(data=st.data())
def test_generate_exits_0_or_2_without_traceback_or_stray_files_many_examples(data):
    _check_generate(data)


@st.composite
def trajectories_argv(draw, files: dict[str, Path], out: Path) -> list[str]:
    action = draw(st.sampled_from(["check", "convert", "preset"]))
    out_name = draw(st.sampled_from(["t.json", "t.json", "missing/t.json", "."]))
    sizes = ["384x256", "96x64", "0x0", "10x10", "x", "1x1", "100000x100000"]
    if action == "preset":
        name = draw(
            st.sampled_from(["pan_left", "zoom_in", "pan_right:40+zoom_out", "nothing", "pan_left+pan_left"])
        )
        argv = ["trajectories", "preset", name, "--out", str(out / out_name)]
        argv += draw(_option("--frames", ["2", "16"], ["0", "1", "100000000", "x"]))
        argv += draw(_option("--magnitude", ["10", "0.2"], NUMBERS))
        argv += draw(_option("--grid", ["3x3", "1x2"], ["0x0", "1x1", "1000x1000"]))
        argv += draw(_option("--size", ["384x256", "96x64"], sizes))
        return argv
    source = draw(st.sampled_from(["rich", "official", "outside", "text", "folder", "missing"]))
    argv = ["trajectories", action, str(files[source])]
    argv += draw(_option("--size", ["384x256", "96x64"], sizes))
    if action == "check":
        return argv + draw(_option("--max-tracks", ["8", "1"], ["0", "-1", "x"]))
    argv += ["--out", str(out / out_name)]
    argv += draw(_option("--to-size", ["96x64", "768x512"], sizes))
    return argv + draw(st.sampled_from([[], ["--official"]]))


@settings(max_examples=40, **COMMON_SETTINGS)
@given(data=st.data())
def test_trajectories_commands_exit_0_or_2_without_traceback_or_stray_files(data):
    with _workspace() as files:
        out = files["out"]
        argv = data.draw(trajectories_argv(files, out))
        status, _, _ = _run(argv)
        written = _files(out)
        if status == 0 and argv[1] != "check":
            assert written == {"t.json"}, (argv, written)
            json.loads((out / "t.json").read_text())
        else:
            assert written == set(), (argv, written)


@st.composite
def curate_argv(draw, inputs: dict[str, Path], root: Path) -> list[str]:
    source = draw(st.sampled_from(list(inputs)))
    target = draw(
        st.sampled_from(["out/c", "out/c", "videos/c", "videos", "out/x/y", "/proc/c", "notes.txt"])
    )
    argv = [
        "curate",
        str(inputs[source]),
        target if target.startswith("/") else str(root / target),
        "--dry-run",
    ]
    return argv + _draw_options(
        draw,
        [
            ("--seed", ["0", "7"], ["-1", "x", str(2**63)]),
            ("--num-frames", ["16"], ["0", "1", "x"]),
            ("--stride-min", ["1"], ["0", "x"]),
            ("--stride-max", ["4"], ["0", "x"]),
            ("--motion-drop", ["0.25", "0"], NUMBERS + ["1", "1.5"]),
            ("--scene-threshold", ["27"], NUMBERS),
            ("--grid-size", ["4"], ["0", "x"]),
            ("--samples-per-shard", ["2"], ["0", "x"]),
            ("--tracker", ["lk"], ["cotracker", "sideways"]),
            ("--motion-backend", ["dis"], ["raft", "sideways"]),
            ("--workers", ["1", "2"], ["0", "x"]),
        ],
    )


@settings(max_examples=30, **COMMON_SETTINGS)
@given(data=st.data())
def test_curate_dry_run_exits_0_or_2_without_traceback_and_writes_nothing(data):
    with _workspace() as files:
        root = files["root"]
        (root / "videos").mkdir()
        video = root / "videos" / "clip.mp4"
        write_mp4(np.zeros((4, 16, 16, 3), dtype=np.uint8), video)
        (root / "list.txt").write_text(f"{video}\n")
        inputs = {"folder": root / "videos", "video": video, "list": root / "list.txt"}
        inputs |= {"text": files["text"], "image": files["image"], "missing": files["missing"]}
        before = _files(root)
        argv = data.draw(curate_argv(inputs, root))
        status, out, _ = _run(argv)
        if status == 0:
            assert out.startswith("dry run: 1 input(s)"), out
        assert _files(root) == before, argv
