"""Per-session resources of the app: an output folder per browser session and a cancel flag per session.

Both live in objects that :func:`imageconductor.app.ui.build_app` creates for its app (never in module
globals), keyed by Gradio's session hash, so two sessions never see each other's files or runs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["CancelFlags", "SessionFiles"]

_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def _key(session: str | None) -> str:
    """A folder-safe key for a session hash (``"local"`` when there is no session)."""
    cleaned = _SAFE.sub("", session or "")[:64]
    return cleaned or "local"


class SessionFiles:
    """Output folders: ``root/<session>/run-<n>`` for each request of a session."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="imageconductor-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def session_dir(self, session: str | None) -> Path:
        """The folder of one session (created on first use)."""
        folder = self.root / _key(session)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def new_run_dir(self, session: str | None) -> Path:
        """A fresh, empty folder for one request of ``session``."""
        parent = self.session_dir(session)
        with self._lock:
            return Path(tempfile.mkdtemp(prefix="run-", dir=parent))

    def forget(self, session: str | None) -> None:
        """Delete every file of ``session`` (when its browser tab goes away)."""
        shutil.rmtree(self.root / _key(session), ignore_errors=True)


class CancelFlags:
    """One cancel flag per session: the running sampler checks it after every step."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str | None) -> threading.Event:
        """A cleared flag for a new run of ``session``."""
        with self._lock:
            flag = self._flags[_key(session)] = threading.Event()
        return flag

    def cancel(self, session: str | None) -> bool:
        """Ask the run of ``session`` to stop; False when it has none."""
        with self._lock:
            flag = self._flags.get(_key(session))
        if flag is None:
            return False
        flag.set()
        return True

    def finish(self, session: str | None, flag: threading.Event) -> None:
        """Forget ``flag`` once its run is over (unless a newer run replaced it)."""
        with self._lock:
            if self._flags.get(_key(session)) is flag:
                del self._flags[_key(session)]
