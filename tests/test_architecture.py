"""The package's layers (import-linter contracts in pyproject.toml) and the command line's surface."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imageconductor.cli.entry import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(source_root: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    command = [
        sys.executable,
        "-c",
        "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))",
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    result = _lint_imports(ROOT / "src", ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_subpackage_importing_the_command_line_breaks_the_contracts(tmp_path):
    shutil.copytree(ROOT / "src" / "imageconductor", tmp_path / "src" / "imageconductor")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / "src" / "imageconductor" / "trajectories" / "resample.py"
    module.write_text(module.read_text() + "\nfrom imageconductor.cli.common import CLIError  # noqa\n")
    result = _lint_imports(tmp_path / "src", tmp_path)
    assert result.returncode != 0
    assert "imageconductor.trajectories.resample -> imageconductor.cli.common" in result.stdout


def _actions(parser: argparse.ArgumentParser, path: str = "imageconductor"):
    """Every (command path, action) of a parser and its sub-commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _actions(subparser, f"{path} {name}")
        else:
            yield path, action


def test_every_option_and_positional_has_help_text():
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, action in _actions(build_parser())
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert not missing, missing


@pytest.mark.parametrize("argv", [["--version"], ["train", "--help"], ["train", "stage", "--help"]])
def test_version_and_help_read_as_text(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    if argv == ["--version"]:
        assert out.startswith("imageconductor ") and out.split()[1][0].isdigit()
    else:
        assert "usage: imageconductor train" in out and '"""' not in out and "``" not in out
