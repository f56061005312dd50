"""The default model built in parts: finished stages exported as files to commit (``--export-stages``), and
a later build resuming from them (``--resume-from``) that writes the same model, bit for bit, as a build in
one go; refusals (other settings, damaged files, other runs in the work dir) before anything trains."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from imageconductor.cli import main
from imageconductor.training import make_default as md
from imageconductor.training import stage_export

pytestmark = pytest.mark.usefixtures("single_torch_thread", "fresh_accelerate_state")

SRC = Path(__file__).resolve().parents[1] / "src"
#: one step per stage of the smoke plan
SCALE = 0.5


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    """Stages vae and base of the smoke plan, built with ``--until base --export-stages``."""
    root = tmp_path_factory.mktemp("part-one")
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    md.make_default(
        root / "model", md.SMOKE_PLAN, root / "work", SCALE, until="base", export_to=root / "committed"
    )
    return root / "committed"


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(md, "run_training", lambda *a, **k: pytest.fail("trained"))


def _card_rows(folder: Path) -> dict[str, list[str]]:
    rows = {}
    for line in (folder / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] in md.STAGE_ORDER:
            rows[cells[0]] = cells
    return rows


def _build_cli(out: Path, work: Path, *extra: str) -> list[str]:
    return ["train", "default", "--profile", "smoke", "--steps-scale", str(SCALE), "--out", str(out)] + [
        "--work-dir",
        str(work),
        *extra,
    ]


def _fails(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_build_resumed_from_committed_stages_is_the_build_in_one_go_bit_for_bit(committed, tmp_path):
    committed = shutil.copytree(committed, tmp_path / "committed")
    one_go = md.make_default(tmp_path / "one-go", md.SMOKE_PLAN, tmp_path / "one-go-work", SCALE)

    # the export: vae and base, no checkpoint, no path of the build machine, frozen networks stored once
    assert sorted(p.name for p in committed.iterdir()) == ["base", "vae"]
    names = {p.relative_to(committed).as_posix() for p in committed.rglob("*")}
    assert not [n for n in names if "checkpoint" in n or n.endswith((".pkl", ".bin"))], names
    assert str(committed.parent) not in "".join(p.read_text() for p in committed.rglob("*.json"))
    assert str(committed.parent) not in (committed / "base" / "training_config.yaml").read_text()
    assert {"stage.json", "stage_done.json", "training_config.yaml", "logs/train.jsonl"} <= {
        n.partition("/")[2] for n in names if n.startswith("base/")
    }
    listed = json.loads((committed / "base" / "stage.json").read_text())["files"]
    assert listed["vae/diffusion_pytorch_model.safetensors"]["stored_in"] == "vae"  # frozen in base
    assert listed["unet/diffusion_pytorch_model.safetensors"]["stored_in"] == "base"
    assert not (committed / "base" / "final" / "vae").exists()
    before = {p: p.read_bytes() for p in committed.rglob("*") if p.is_file()}

    # part two in a fresh process and a fresh work dir, exporting to the same folder
    completed = subprocess.run(
        [sys.executable, "-m", "imageconductor.cli"]
        + _build_cli(tmp_path / "resumed", tmp_path / "resumed-work")
        + ["--resume-from", str(committed), "--export-stages", str(committed)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    resumed = tmp_path / "resumed"

    files = sorted(p.relative_to(one_go) for p in one_go.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file())
    tensors = 0
    for name in files:
        if name.suffix == ".safetensors":
            ours, theirs = load_file(one_go / name), load_file(resumed / name)
            assert ours.keys() == theirs.keys(), name
            for key in ours:
                assert torch.equal(ours[key], theirs[key]), (name, key)
                tensors += 1
        elif name.name != "README.md":
            assert (one_go / name).read_bytes() == (resumed / name).read_bytes(), name
    assert tensors > 500
    # the card: the same steps, batch and losses per stage; the committed stages keep the time they took
    one_rows, resumed_rows = _card_rows(one_go), _card_rows(resumed)
    assert list(resumed_rows) == list(md.STAGE_ORDER)
    for stage in md.STAGE_ORDER:
        assert resumed_rows[stage][1:3] == one_rows[stage][1:3] == ["1", "2"]
        assert resumed_rows[stage][5] == one_rows[stage][5]
    for stage in ("vae", "base"):
        built = json.loads((committed / stage / "stage_done.json").read_text())
        assert resumed_rows[stage][3] == str(built["seconds"])
    # the committed stages were left as they were; the new ones were exported beside them
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in committed.iterdir()) == sorted(md.STAGE_ORDER)
    assert not [p for p in committed.rglob("*") if "checkpoint" in p.name]


def test_resume_from_refuses_other_settings_in_one_line_before_training(
    committed, tmp_path, capsys, no_training
):
    other_rate = ["--set", "stages.base.optim.learning_rate=0.01", "--resume-from", str(committed)]
    line = _fails(_build_cli(tmp_path / "m", tmp_path / "w", *other_rate), capsys)
    assert "stage 'base'" in line and "optim.learning_rate: 0.001 -> 0.01" in line
    line = _fails(
        [
            "train",
            "default",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path / "m"),
            "--resume-from",
            str(committed),
        ],
        capsys,
    )
    assert "stage 'vae'" in line and "max_steps: 1 -> 2" in line  # another --steps-scale
    assert list(tmp_path.iterdir()) == []
    # the work-dir check says the same in the same words
    md.make_default(tmp_path / "m", md.SMOKE_PLAN, tmp_path / "w", SCALE, until="base", resume_from=committed)
    faster = md.plan_with_overrides(md.SMOKE_PLAN, ["stages.base.data.motion_scale=2"])
    with pytest.raises(
        stage_export.StageSetupError, match=r"stage 'base' .*data\.motion_scale: 1\.0 -> 2\.0"
    ):
        md.make_default(tmp_path / "m2", faster, tmp_path / "w", SCALE, resume_from=committed)


def test_resume_from_refuses_damaged_or_incomplete_exports_and_other_runs(
    committed, tmp_path, capsys, no_training
):
    def copy() -> Path:
        folder = tmp_path / f"copy{len(list(tmp_path.glob('copy*')))}"
        shutil.copytree(committed, folder)
        return folder

    def refused(folder: Path, work: Path | None = None) -> str:
        return _fails(
            _build_cli(tmp_path / "m", work or tmp_path / "w", "--resume-from", str(folder)), capsys
        )

    lfs = copy()  # a weight file checked out as a Git LFS pointer
    (lfs / "base" / "final" / "unet" / "diffusion_pytorch_model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"
    )
    assert "is not the file exported for stage 'base'" in refused(lfs)
    gap = copy()
    shutil.rmtree(gap / "vae")
    assert "holds stage 'base' but not the stage 'vae' before it" in refused(gap)
    assert not (tmp_path / "w").exists()  # nothing restored: every file is checked first
    (tmp_path / "plain").mkdir()
    assert "holds no exported stage" in refused(tmp_path / "plain")
    assert "not a folder" in refused(tmp_path / "nothing")
    assert not (tmp_path / "m").exists()

    # a work dir holding another run of a committed stage, or a later stage trained on top of another
    md.make_default(tmp_path / "m", md.SMOKE_PLAN, tmp_path / "w", SCALE, until="base", resume_from=committed)
    md.make_default(tmp_path / "m", md.SMOKE_PLAN, tmp_path / "w", SCALE, until="base", resume_from=committed)
    text_encoder = tmp_path / "w" / "base" / "final" / "text_encoder" / "model.safetensors"
    text_encoder.write_bytes(text_encoder.read_bytes()[:-1] + b" ")
    assert "already holds another run of stage 'base'" in refused(committed)
    shutil.rmtree(tmp_path / "w" / "base")
    (tmp_path / "w" / "controlnet").mkdir()
    assert "trained on top of another stage 'base'" in refused(committed)


def test_an_export_that_fails_leaves_the_earlier_one(committed, tmp_path, monkeypatch):
    work = tmp_path / "work"
    md.make_default(tmp_path / "m", md.SMOKE_PLAN, work, SCALE, until="base", resume_from=committed)
    export = tmp_path / "export"
    shutil.copytree(committed, export)
    before = {p: p.read_bytes() for p in export.rglob("*") if p.is_file()}
    # the same stages export to the same bytes: nothing is rewritten
    assert not stage_export.export_stage(work / "vae", export, "vae", md.STAGE_ORDER)
    done = work / "vae" / "stage_done.json"
    done.write_text(done.read_text().replace('"steps": 1', '"steps": 1, "note": 1'))

    def broken(new, target):
        raise OSError("disk full")

    monkeypatch.setattr(stage_export, "_replace_folder", broken)
    with pytest.raises(OSError, match="disk full"):
        stage_export.export_stage(work / "vae", export, "vae", md.STAGE_ORDER)
    assert {p: p.read_bytes() for p in export.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in export.iterdir()) == ["base", "vae"]  # no partial folder left
    monkeypatch.undo()
    # a changed summary replaces the stage; the stage after it, with the same model under it, stays
    assert stage_export.export_stage(work / "vae", export, "vae", md.STAGE_ORDER)
    assert '"note": 1' in (export / "vae" / "stage_done.json").read_text()
    assert (export / "base" / "stage.json").is_file()
    # another model replaces the stage and removes the stages exported on top of the old one
    (work / "vae" / "final" / "vae" / "config.json").write_text("{}\n")
    assert stage_export.export_stage(work / "vae", export, "vae", md.STAGE_ORDER)
    assert sorted(p.name for p in export.iterdir()) == ["vae"]
