"""Files as people have them: output locations checked before any work, atomic writes that end with the
permissions of the user's umask, and images read upright (EXIF orientation) within a pixel limit.

Everything here raises :class:`FileCheckError` (a ValueError) with a one-line message naming the path.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "AtomicFile",
    "FileCheckError",
    "ImageTooLargeError",
    "MAX_IMAGE_PIXELS",
    "UnreadableImageError",
    "check_output_file",
    "check_output_folder",
    "file_mode",
    "read_image",
]

PathLike = str | os.PathLike

#: Largest image read, in pixels: Pillow's decompression-bomb warning threshold (about 89 megapixels).
MAX_IMAGE_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485


class FileCheckError(ValueError):
    """An input or output path that cannot be used; the message names it and says why."""


class ImageTooLargeError(FileCheckError):
    """An image over the pixel limit; ``size`` is its ``(width, height)``, or None when Pillow refused even
    its header as a decompression bomb."""

    def __init__(self, message: str, size: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.size = size


class UnreadableImageError(FileCheckError):
    """A file that is not an image Pillow can read; ``reason`` is what Pillow said, on one line."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def file_mode() -> int:
    """The permissions a new file gets from the process's umask (``0o666 & ~umask``, 0o644 for 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class AtomicFile:
    """A temporary file beside ``path`` that either replaces ``path`` (``commit``) or vanishes
    (``discard``). The final file has the umask's permissions (see `file_mode`), not mkstemp's 0600."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}", dir=self.path.parent
        )
        os.close(handle)
        self.temp = Path(name)
        os.chmod(self.temp, file_mode())

    def commit(self) -> None:
        """Rename the temporary file onto ``path``."""
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        """Remove the temporary file if it is still there."""
        self.temp.unlink(missing_ok=True)


def _check_writable(folder: Path, what: str) -> None:
    """Create and remove a probe file in ``folder``: permission bits say nothing for root or /proc."""
    try:
        with tempfile.TemporaryFile(prefix=".imageconductor-probe-", dir=folder):
            pass
    except OSError as exc:
        raise FileCheckError(f"cannot write {what} into {folder}: {exc.strerror or exc}") from None


def check_output_file(path: PathLike) -> Path:
    """Check that a file can be written at ``path``: its folder exists and is writable and ``path`` is
    not a folder. Nothing is left behind. Returns ``path`` as a Path."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise FileCheckError(f"{path} is a folder; expected a file name")
    if not parent.is_dir():
        reason = "is not a folder" if parent.exists() else "does not exist"
        raise FileCheckError(f"the folder of {path} ({parent}) {reason}")
    _check_writable(parent, path.name)
    return path


def check_output_folder(path: PathLike, not_inside: PathLike | None = None) -> Path:
    """Check that ``path`` is (or can be created as) a writable folder, and, when ``not_inside`` is given,
    that it is neither that folder nor below it. Nothing is created. Returns ``path`` as a Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileCheckError(f"{path} exists and is not a folder")
    if not_inside is not None:
        inner, outer = path.resolve(), Path(not_inside).resolve()
        if inner == outer or outer in inner.parents:
            raise FileCheckError(
                f"{path} is inside the input folder {not_inside}; choose a folder outside it"
            )
    existing = path if path.is_dir() else path.parent
    if not existing.is_dir():
        reason = "is not a folder" if existing.exists() else "does not exist"
        raise FileCheckError(f"the parent folder of {path} ({existing}) {reason}")
    _check_writable(existing, "files")
    return path


def read_image(path: PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The RGB image at ``path``, turned upright by its EXIF orientation tag (as photo viewers show it).

    Raises FileCheckError when the file is missing, not an image, or has more than ``max_pixels`` pixels
    (a decompression bomb or a photo far larger than any model frame).
    """
    path = Path(path)
    if not path.is_file():
        raise FileCheckError(f"image not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"image {path} is {width}x{height} = {width * height:,} pixels, more than the limit "
                        f"of {max_pixels:,}; scale it down first",
                        (width, height),
                    )
                image.load()
                return ImageOps.exif_transpose(image).convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image {path} is too large to read safely: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        if isinstance(exc, FileCheckError):
            raise
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise UnreadableImageError(
            f"cannot read image {path}: {' '.join(str(exc).split())}", reason
        ) from None
