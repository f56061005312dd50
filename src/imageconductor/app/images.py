"""Uploaded first frames: read safely (size and pixel limits, EXIF orientation) and shown as the model sees them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import PIL.Image

from imageconductor.files import FileCheckError, ImageTooLargeError, UnreadableImageError, read_image
from imageconductor.pipelines.image_conductor import center_crop_resize

__all__ = ["MAX_PIXELS", "MAX_UPLOAD_BYTES", "ImageError", "model_frame", "open_upload"]

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: Largest image accepted, in pixels (width x height); larger files are refused before they are decoded.
MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """An upload that is not a usable image; the message is shown to the person who sent it."""


def open_upload(
    path: str | os.PathLike, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS
) -> PIL.Image.Image:
    """The RGB image in the file ``path``, turned upright by its EXIF orientation.

    Raises ImageError for a missing or empty file, a file over ``max_bytes``, anything Pillow cannot read,
    and images over ``max_pixels`` (`imageconductor.files.read_image` checks the header before decoding,
    so decompression bombs never expand in memory); the messages speak to the person who uploaded it.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError:
        raise ImageError("no image received") from None
    if size == 0:
        raise ImageError("the uploaded file is empty")
    if size > max_bytes:
        raise ImageError(
            f"the file is {size / 2**20:.1f} MiB; images up to {max_bytes / 2**20:.0f} MiB are accepted"
        )
    try:
        return read_image(file, max_pixels)
    except ImageTooLargeError as exc:
        if exc.size is None:  # Pillow refused even the header as a decompression bomb
            raise ImageError(
                "the image is too large to decode safely; images up to "
                f"{max_pixels / 1e6:.0f} megapixels are accepted"
            ) from None
        width, height = exc.size
        raise ImageError(
            f"the image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"images up to {max_pixels / 1e6:.0f} megapixels are accepted"
        ) from None
    except UnreadableImageError as exc:
        raise ImageError(f"not a readable image ({exc.reason[:200]})") from None
    except FileCheckError:
        raise ImageError("no image received") from None


def model_frame(image: PIL.Image.Image, width: int, height: int) -> np.ndarray:
    """``image`` centre-cropped and resized to ``width x height`` exactly as the pipeline does it, as a
    uint8 array ``(height, width, 3)``: the pixels the model starts from."""
    return np.asarray(center_crop_resize(image, height, width), dtype=np.uint8)
