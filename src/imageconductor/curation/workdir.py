"""Per-input result cache that makes a run resumable: one file per finished input, written atomically."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from imageconductor.curation.stages import Pass1Result, Pass2Result

WORK_DIR_NAME = ".curation-work"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class WorkDir:
    """``OUT/.curation-work/<config fingerprint>/{pass1,pass2}/<key>.*``.

    Pass 1 writes ``<key>.mp4`` then ``<key>.json``; the JSON is the commit marker. Pass 2 writes
    ``<key>.npz`` (tracks + visibility) or ``<key>.error.json``. A file that exists is complete.
    """

    def __init__(self, out_dir: str | Path, fingerprint: str) -> None:
        self.root = Path(out_dir) / WORK_DIR_NAME / fingerprint
        self.pass1_dir = self.root / "pass1"
        self.pass2_dir = self.root / "pass2"

    def create(self) -> None:
        self.pass1_dir.mkdir(parents=True, exist_ok=True)
        self.pass2_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.pass1_dir, self.pass2_dir):
            for stale in folder.glob(".*.tmp-*"):
                stale.unlink(missing_ok=True)

    # pass 1 ---------------------------------------------------------------------------------------
    def has_pass1(self, key: str) -> bool:
        return (self.pass1_dir / f"{key}.json").is_file()

    def save_pass1(self, result: Pass1Result) -> None:
        key = result.record["key"]
        if result.clip:
            atomic_write_bytes(self.pass1_dir / f"{key}.mp4", result.clip)
        payload = {"record": result.record, "timings": result.timings}
        atomic_write_text(self.pass1_dir / f"{key}.json", json.dumps(payload, sort_keys=True))

    def load_pass1_record(self, key: str) -> dict[str, Any]:
        return json.loads((self.pass1_dir / f"{key}.json").read_text())["record"]

    def load_pass1_timings(self, key: str) -> dict[str, float]:
        return json.loads((self.pass1_dir / f"{key}.json").read_text()).get("timings", {})

    def load_clip(self, key: str) -> bytes:
        return (self.pass1_dir / f"{key}.mp4").read_bytes()

    # pass 2 ---------------------------------------------------------------------------------------
    def has_pass2(self, key: str) -> bool:
        return (self.pass2_dir / f"{key}.npz").is_file() or (self.pass2_dir / f"{key}.error.json").is_file()

    def save_pass2(self, result: Pass2Result) -> None:
        if result.error is not None:
            payload = {"error": result.error, "timings": result.timings}
            atomic_write_text(
                self.pass2_dir / f"{result.key}.error.json", json.dumps(payload, sort_keys=True)
            )
            return
        buffer = io.BytesIO()
        np.savez(
            buffer,
            tracks=result.tracks,
            visibility=result.visibility,
            timings=np.array(json.dumps(result.timings)),
            info=np.array(json.dumps(result.info, sort_keys=True)),
        )
        atomic_write_bytes(self.pass2_dir / f"{result.key}.npz", buffer.getvalue())

    def load_pass2(
        self, key: str
    ) -> tuple[np.ndarray | None, np.ndarray | None, str | None, dict[str, float]]:
        """(tracks, visibility, error, timings) of a finished pass-2 entry."""
        error_file = self.pass2_dir / f"{key}.error.json"
        if error_file.is_file():
            payload = json.loads(error_file.read_text())
            return None, None, payload["error"], payload.get("timings", {})
        with np.load(self.pass2_dir / f"{key}.npz", allow_pickle=False) as data:
            return data["tracks"], data["visibility"], None, json.loads(str(data["timings"]))

    def load_pass2_info(self, key: str) -> dict[str, Any]:
        """The ``info`` of a finished pass-2 entry (clip kind and trust figures; empty after an error)."""
        path = self.pass2_dir / f"{key}.npz"
        if not path.is_file():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["info"])) if "info" in data.files else {}
