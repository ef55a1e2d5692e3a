"""Decoding images the same way at index time (checks) and at training time (pixels).

Conventions, one for every reader:

- **EXIF orientation is applied** (as labelling tools, Detectron2 and Ultralytics display the
  image), so annotation sizes and boxes refer to the upright image. An annotation made on the raw
  sensor pixels shows up as a width/height mismatch at index time, naming the file.
- Every mode becomes 8-bit RGB: grayscale, palette (with transparency), RGBA (alpha dropped),
  CMYK, and 16-bit grayscale, which is scaled (``>> 8``) rather than saturated as PIL's own RGB
  conversion does.
- Truncated files are errors: PIL's ``LOAD_TRUNCATED_IMAGES`` is never set.
- Images above ``max_pixels`` are refused with a message naming the limit, before decoding.
"""

from __future__ import annotations

import os
import stat
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (~ 0.25 GB of RGBA)


class ImageProblem(Exception):
    """An image that cannot be used; ``reason`` is the counted reason, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _open(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and check the pixel limit before anything is decoded. Only
    regular files are opened: reading a FIFO, a socket or a device named like an image would
    block or never end."""
    _check_regular(path)
    try:
        with warnings.catch_warnings():  # our own limit replaces PIL's warning and its 2x error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except FileNotFoundError as err:
        raise ImageProblem("image_missing", f"{path}: image file missing") from err
    except Image.DecompressionBombError as err:
        raise ImageProblem("image_too_large", f"{path}: {err}") from err
    except (UnidentifiedImageError, OSError, ValueError) as err:  # ValueError: a PNG text
        # chunk over PIL's limit (a decompression-bomb guard), said as the file's fault
        raise ImageProblem("image_unreadable", f"{path}: not a readable image ({err})") from err
    if img.width * img.height > max_pixels:
        img.close()
        raise ImageProblem(
            "image_too_large",
            f"{path}: {img.width}x{img.height} = {img.width * img.height} pixels exceeds "
            f"data.policy.max_image_pixels ({max_pixels})",
        )
    return img


def _check_regular(path: str | os.PathLike) -> None:
    try:
        mode = os.stat(path).st_mode  # follows a symlink to what it names; never blocks
    except FileNotFoundError as err:
        raise ImageProblem("image_missing", f"{path}: image file missing") from err
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the name
        raise ImageProblem("image_unreadable", f"{path}: cannot stat ({err})") from err
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device or special file"
        )
        raise ImageProblem("image_unreadable", f"{path}: not a regular file ({kind})")


def image_size(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header only."""
    with _open(path, max_pixels) as img:
        width, height = img.size
        if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
            width, height = height, width  # rotated by 90 or 270 degrees
        return width, height


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image as upright uint8 RGB ``[H, W, 3]``.

    Raises:
        ImageProblem: missing, unreadable or truncated file, or above the pixel limit.
    """
    with _open(path, max_pixels) as img:
        try:
            img.load()
            upright = ImageOps.exif_transpose(img)
        except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
            raise ImageProblem("image_truncated", f"{path}: cannot decode ({err})") from err
        return to_rgb(upright)


def to_rgb(img: Image.Image) -> np.ndarray:
    """A decoded PIL image of any mode as uint8 RGB ``[H, W, 3]`` (the conventions above)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale (PNG opens as I;16 or I)
        gray = np.asarray(img).astype(np.int64)
        scaled = (np.clip(gray, 0, 65535) >> 8).astype(np.uint8)  # [H, W]
        return np.repeat(scaled[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # palette transparency is not carried over by a direct RGB
    return np.asarray(img.convert("RGB"))
