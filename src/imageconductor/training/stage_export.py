"""Finished stages of a default-model build as files to commit, and a build that resumes from them.

A build of the embedded default model (`training.make_default`) can run in parts, on other machines or in
other runs: ``--export-stages FOLDER`` writes every finished stage to ``FOLDER/<stage>/``, and
``--resume-from FOLDER`` makes a later build start after the last stage found there. An exported stage
holds what the later stages and the model card read, and no checkpoint:

- ``final/``: the stage's model folder, less the files that an earlier exported stage already stores byte
  for byte (a frozen network is stored once, by the stage that trained it); the component configs lose
  ``_name_or_path`` (a folder of the build machine, which diffusers sets again on every load);
- ``stage.json``: every file of the complete model folder with its SHA-256, its size and the stage that
  stores it;
- ``training_config.yaml``: the settings the stage ran with, folder paths relative to FOLDER;
- ``stage_done.json``: the card's row (steps, batch, seconds it took, samples/s, final losses);
- ``logs/train.jsonl``: the logged loss history.

Every write goes to a hidden folder beside its target and is renamed into place once complete, so an
interrupted export or restore leaves the earlier folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from imageconductor.training.config import SAVED_CONFIG_FILE, TrainingConfig

__all__ = [
    "DONE_FILE",
    "MANIFEST_FILE",
    "StageSetupError",
    "differing_settings",
    "export_stage",
    "exported_config",
    "exported_stages",
    "exported_summary",
    "restore_stage",
    "stage_finished",
    "stage_matches_export",
    "verified_files",
]

logger = logging.getLogger(__name__)

DONE_FILE = "stage_done.json"
MANIFEST_FILE = "stage.json"
LOG_FILE = "logs/train.jsonl"
#: Files of a stage folder besides ``final/`` that an export carries (the log only when present).
CARRIED_FILES = (SAVED_CONFIG_FILE, DONE_FILE, LOG_FILE)
#: Settings that say where a stage's folders were, not how it was trained.
PATH_SETTINGS = ("output_dir", "model.pretrained_model_path")


class StageSetupError(ValueError):
    """A build that cannot start as asked: a stage trained with other settings, a damaged exported stage,
    or a work dir holding another run of a committed stage. Raised before anything is trained."""


def stage_finished(stage_dir: Path) -> bool:
    """Whether ``stage_dir`` holds a finished stage run (its summary and its model folder)."""
    return (stage_dir / DONE_FILE).is_file() and (stage_dir / "final" / "model_index.json").is_file()


def differing_settings(saved: TrainingConfig, wanted: TrainingConfig, limit: int = 4) -> list[str]:
    """``"key: saved -> wanted"`` for every setting (dotted key, folder paths aside) that differs, at most
    ``limit`` of them, sorted by key."""
    old, new = _flatten(saved.to_dict()), _flatten(wanted.to_dict())
    keys = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys[:limit]]


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = prefix + key
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif name not in PATH_SETTINGS:
            flat[name] = value
    return flat


# ---------------------------------------------------------------------------------------------- export


def _shipped_bytes(path: Path) -> bytes:
    """The bytes of a model-folder file as exported: a component ``config.json`` without
    ``_name_or_path`` (written the way diffusers writes it), every other file as it is."""
    data = path.read_bytes()
    if path.name != "config.json":
        return data
    try:
        config = json.loads(data)
    except ValueError:
        return data
    if not isinstance(config, dict) or config.pop("_name_or_path", None) is None:
        return data
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def _model_files(final: Path) -> dict[str, bytes]:
    """Every file under ``final`` (relative POSIX path → exported bytes)."""
    return {
        path.relative_to(final).as_posix(): _shipped_bytes(path)
        for path in sorted(final.rglob("*"))
        if path.is_file()
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(stage_folder: Path) -> dict[str, Any]:
    file = stage_folder / MANIFEST_FILE
    try:
        manifest = json.loads(file.read_text())
        files = manifest["files"]
        if not isinstance(files, dict) or not all(
            isinstance(entry, dict) and {"sha256", "size", "stored_in"} <= entry.keys()
            for entry in files.values()
        ):
            raise ValueError("bad file list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StageSetupError(f"{file} is not an exported stage's file list: {exc}") from None
    return manifest


def export_stage(stage_dir: Path, folder: Path, stage: str, order: Sequence[str]) -> bool:
    """Write the finished stage run in ``stage_dir`` to ``folder/<stage>`` (see the module docstring).

    ``order`` lists the stages; the one before ``stage`` must be exported already, and files equal to
    those it lists are not stored again. Returns False when ``folder/<stage>`` already held exactly this
    export (nothing is rewritten). When it held another, that one is replaced; if its model differed, the
    exported stages after it, trained on top of the replaced one, are removed.
    """
    if not stage_finished(stage_dir):
        raise ValueError(f"{stage_dir} holds no finished stage run")
    position = list(order).index(stage)
    previous = order[position - 1] if position else None
    folder.mkdir(parents=True, exist_ok=True)
    earlier = _read_manifest(folder / previous)["files"] if previous is not None else {}
    files = _model_files(stage_dir / "final")
    manifest: dict[str, Any] = {"stage": stage, "files": {}}
    stored: dict[str, bytes] = {}
    for name, data in files.items():
        digest = _sha256(data)
        before = earlier.get(name)
        if before is not None and before["sha256"] == digest:
            owner = before["stored_in"]
        else:
            owner = stage
            stored[name] = data
        manifest["files"][name] = {"sha256": digest, "size": len(data), "stored_in": owner}
    carried = {
        SAVED_CONFIG_FILE: _portable_config(stage_dir / SAVED_CONFIG_FILE, stage, previous),
        DONE_FILE: (stage_dir / DONE_FILE).read_bytes(),
    }
    if (stage_dir / LOG_FILE).is_file():
        carried[LOG_FILE] = (stage_dir / LOG_FILE).read_bytes()
    carried[MANIFEST_FILE] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()

    target = folder / stage
    if target.is_dir() and _holds(target, stored, carried):
        return False
    model_changed = target.exists() and _model_digests(target) != _model_digests(manifest)
    temporary = folder / f".{stage}.partial-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        for name, data in {**{f"final/{k}": v for k, v in stored.items()}, **carried}.items():
            path = temporary / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        _replace_folder(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    if model_changed:
        for later in order[position + 1 :]:
            if (folder / later).exists():
                logger.warning(
                    "removing exported stage %s: it was trained on top of another %s", later, stage
                )
                shutil.rmtree(folder / later)
    return True


def _portable_config(saved_file: Path, stage: str, previous: str | None) -> bytes:
    """The stage's saved settings with its folders relative to the export folder."""
    config = TrainingConfig.load(saved_file)
    config.output_dir = stage
    if config.model.pretrained_model_path:
        config.model.pretrained_model_path = f"{previous}/final" if previous else None
    return yaml.safe_dump(config.to_dict(), sort_keys=False).encode()


def _model_digests(source: Path | dict[str, Any]) -> dict[str, str] | None:
    """``{file: sha256}`` of an exported stage's model (a folder or its manifest); None if unreadable."""
    try:
        manifest = _read_manifest(source) if isinstance(source, Path) else source
    except StageSetupError:
        return None
    return {name: entry["sha256"] for name, entry in manifest["files"].items()}


def _holds(target: Path, stored: dict[str, bytes], carried: dict[str, bytes]) -> bool:
    """Whether the exported stage folder ``target`` holds exactly these files."""
    wanted = {**{f"final/{k}": v for k, v in stored.items()}, **carried}
    present = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    if present != set(wanted):
        return False
    return all((target / name).read_bytes() == data for name, data in wanted.items())


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved aside first and removed after."""
    aside = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        target.rename(aside)
    try:
        new.rename(target)
    except OSError:
        if aside.exists():
            aside.rename(target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- resume


def exported_stages(folder: Path, order: Sequence[str]) -> list[str]:
    """The stages exported to ``folder``: a leading part of ``order``. Raises StageSetupError when there is
    none, when a stage folder lacks its file list or when one follows a missing stage."""
    if not folder.is_dir():
        raise StageSetupError(f"--resume-from: {folder} is not a folder")
    found = []
    for stage in order:
        if (folder / stage).exists():
            if not (folder / stage / MANIFEST_FILE).is_file():
                raise StageSetupError(
                    f"--resume-from: {folder / stage} is not an exported stage (no {MANIFEST_FILE})"
                )
            found.append(stage)
    if not found:
        raise StageSetupError(
            f"--resume-from: {folder} holds no exported stage (expected {order[0]}/{MANIFEST_FILE}, "
            "written by --export-stages)"
        )
    if found != list(order[: len(found)]):
        missing = next(stage for stage in order if stage not in found)
        after = next(stage for stage in found if order.index(stage) > order.index(missing))
        raise StageSetupError(
            f"--resume-from: {folder} holds stage {after!r} but not the stage {missing!r} before it"
        )
    return found


def exported_config(folder: Path, stage: str) -> TrainingConfig:
    """The settings stage ``stage`` in the export ``folder`` was trained with."""
    try:
        return TrainingConfig.load(folder / stage / SAVED_CONFIG_FILE)
    except ValueError as exc:  # ConfigError
        raise StageSetupError(f"--resume-from: {folder / stage}: {exc}") from None


def exported_summary(folder: Path, stage: str) -> dict[str, Any]:
    """The summary (the card's row) of stage ``stage`` in the export ``folder``."""
    file = folder / stage / DONE_FILE
    try:
        summary = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise StageSetupError(f"--resume-from: cannot read {file}: {exc}") from None
    if not isinstance(summary, dict) or summary.get("stage") != stage:
        raise StageSetupError(f"--resume-from: {file} is not the summary of stage {stage!r}")
    return summary


def verified_files(folder: Path, stage: str) -> dict[str, bytes]:
    """The complete model folder of the exported stage ``folder/<stage>`` (relative path → bytes), every
    file checked against its size and SHA-256 (raises StageSetupError)."""
    manifest = _read_manifest(folder / stage)
    files = {}
    for name, entry in manifest["files"].items():
        source = folder / entry["stored_in"] / "final" / name
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise StageSetupError(f"--resume-from: cannot read {source}: {exc.strerror or exc}") from None
        if len(data) != entry["size"] or _sha256(data) != entry["sha256"]:
            raise StageSetupError(
                f"--resume-from: {source} is not the file exported for stage {stage!r} (size {len(data)}, "
                f"expected {entry['size']}; a Git LFS pointer, or changed since the export?)"
            )
        files[name] = data
    return files


def stage_matches_export(stage_dir: Path, folder: Path, stage: str) -> bool:
    """Whether the finished stage run in ``stage_dir`` has exactly the model files of the exported stage."""
    if not stage_finished(stage_dir):
        return False
    wanted = {name: entry["sha256"] for name, entry in _read_manifest(folder / stage)["files"].items()}
    present = {name: _sha256(data) for name, data in _model_files(stage_dir / "final").items()}
    return present == wanted


def restore_stage(folder: Path, stage: str, stage_dir: Path) -> None:
    """Write the exported stage ``folder/<stage>`` as a finished stage run at ``stage_dir`` (its complete
    ``final`` model folder, settings, summary and log), after checking every file against its SHA-256.
    ``stage_dir`` must not exist."""
    files = verified_files(folder, stage)
    source = folder / stage
    temporary = stage_dir.with_name(f".{stage_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        for name, data in files.items():
            path = temporary / "final" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for name in CARRIED_FILES:
            if (source / name).is_file():
                (temporary / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / name, temporary / name)
        if not stage_finished(temporary):
            raise StageSetupError(f"--resume-from: {source} lacks {DONE_FILE} or final/model_index.json")
        stage_dir.parent.mkdir(parents=True, exist_ok=True)
        temporary.rename(stage_dir)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
