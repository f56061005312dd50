"""Turn the INPUT argument into an ordered list of videos with optional captions.

Accepted forms:
- a single video file (by its suffix, see ``VIDEO_SUFFIXES``): one input, its ``name.txt`` sidecar the caption;
- a folder: every regular, non-hidden file below it (sorted); ``name.txt`` beside ``name.<ext>`` is that
  file's caption, not an input;
- a list file (``.txt``/``.lst``/``.list``): one path per line, ``#`` comments, paths relative to the file;
- a CSV manifest with a ``path`` column (or ``video``/``file``/``filepath``) and optional ``caption``
  (or ``text``/``name``) and ``id`` columns;
- a JSONL manifest: one object per line with the same keys.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imageconductor.curation.errors import InputListError

PATH_KEYS = ("path", "video", "file", "filepath", "video_path")
CAPTION_KEYS = ("caption", "text", "name", "prompt")
LIST_SUFFIXES = (".txt", ".lst", ".list")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".gif")


@dataclass(frozen=True)
class InputItem:
    """One source video: a stable id (decides its seed and sample key), where it is, its caption."""

    input_id: str
    path: str
    caption: str | None = None

    @property
    def key(self) -> str:
        """Filesystem- and WebDataset-safe key derived from the id (no dots, fixed length)."""
        return hashlib.sha1(self.input_id.encode("utf-8")).hexdigest()[:20]

    def to_dict(self) -> dict[str, str | None]:
        return {"input_id": self.input_id, "path": self.path, "caption": self.caption}

    @classmethod
    def from_dict(cls, data: dict) -> InputItem:
        return cls(input_id=data["input_id"], path=data["path"], caption=data.get("caption"))


def discover_inputs(source: str | Path) -> list[InputItem]:
    """Read INPUT (folder, list file, CSV or JSONL manifest) into an ordered list of unique inputs."""
    source = Path(source)
    if not source.exists():
        raise InputListError(f"input not found: {source}")
    if source.is_dir():
        items = _from_folder(source)
    else:
        suffix = source.suffix.lower()
        if suffix == ".csv":
            items = _from_records(_read_csv(source), source)
        elif suffix in (".jsonl", ".ndjson"):
            items = _from_records(_read_jsonl(source), source)
        elif suffix in LIST_SUFFIXES:
            items = _from_list_file(source)
        elif suffix in VIDEO_SUFFIXES:
            items = [InputItem(source.name, str(source), _sidecar_caption(source))]
        else:
            raise InputListError(
                f"cannot use {source} as INPUT: give a video file ({', '.join(VIDEO_SUFFIXES)}), a folder, "
                f"a list file ({', '.join(LIST_SUFFIXES)}), a .csv or a .jsonl manifest"
            )
    _check_unique(items, source)
    return items


def _from_folder(folder: Path) -> list[InputItem]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    stems_with_media = {p.with_suffix("") for p in files if p.suffix.lower() != ".txt"}
    items = []
    for path in files:
        if path.suffix.lower() == ".txt" and path.with_suffix("") in stems_with_media:
            continue  # a caption sidecar
        caption = None if path.suffix.lower() == ".txt" else _sidecar_caption(path)
        items.append(InputItem(path.relative_to(folder).as_posix(), str(path), caption))
    return items


def _sidecar_caption(path: Path) -> str | None:
    """The caption in ``name.txt`` beside ``name.<ext>``, if there is one and it is not empty."""
    caption_file = path.with_suffix(".txt")
    if not caption_file.is_file():
        return None
    return caption_file.read_text(encoding="utf-8", errors="replace").strip() or None


def _from_list_file(list_file: Path) -> list[InputItem]:
    items = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        items.append(InputItem(entry, str(_resolve(entry, list_file)), None))
    return items


def _read_csv(path: Path) -> Iterable[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise InputListError(f"CSV manifest {path} is empty")
        names = [n.strip().lower() for n in reader.fieldnames]
        if not any(k in names for k in PATH_KEYS):
            raise InputListError(
                f"CSV manifest {path} needs a path column (one of {', '.join(PATH_KEYS)}); found {names}"
            )
        for line_no, row in enumerate(reader, start=2):
            yield line_no, {k.strip().lower(): v for k, v in row.items() if k is not None}


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputListError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
            if isinstance(record, str):
                record = {"path": record}
            if not isinstance(record, dict):
                raise InputListError(f"{path}:{line_no}: each line must be a JSON object or a path string")
            yield line_no, {str(k).lower(): v for k, v in record.items()}


def _from_records(records: Iterable[tuple[int, dict]], manifest: Path) -> list[InputItem]:
    items = []
    for line_no, record in records:
        path_value = next((record[k] for k in PATH_KEYS if record.get(k)), None)
        if not path_value:
            raise InputListError(
                f"{manifest}:{line_no}: no video path (expected one of {', '.join(PATH_KEYS)})"
            )
        caption = next((record[k] for k in CAPTION_KEYS if record.get(k)), None)
        input_id = str(record.get("id") or path_value)
        items.append(InputItem(input_id, str(_resolve(str(path_value), manifest)), caption))
    return items


def _resolve(entry: str, relative_to: Path) -> Path:
    path = Path(entry).expanduser()
    return path if path.is_absolute() else (relative_to.parent / path)


def _check_unique(items: list[InputItem], source: Path) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.input_id in seen:
            raise InputListError(
                f"duplicate input id {item.input_id!r} in {source} (entries {seen[item.input_id]} and {index})"
            )
        seen[item.input_id] = index
