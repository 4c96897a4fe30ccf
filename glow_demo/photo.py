"""Photo loading: whatever a person hands us, as a plain upright 8-bit RGB image, or a
``PhotoError`` whose message can be shown to them as it is.

Paths, encoded bytes, file objects, PIL images and numpy arrays; any colour mode
(palette, grey, bilevel, CMYK, 16-bit, float, with transparency); EXIF rotation. The
size is checked *before* the pixels are decoded, so a decompression bomb costs nothing.
Finding and aligning the face is ``align``'s job.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # bigger than any camera photo a person would upload
MIN_SIDE = 32  # smaller than this cannot hold a usable face


class PhotoError(ValueError):
    """A photo that cannot be edited; ``str(err)`` is a message for the user."""


class NotAnImageError(PhotoError):
    """The input is not an image we can decode."""


class PhotoSizeError(PhotoError):
    """The photo is absurdly large or too small to hold a face."""


PhotoSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image \
    | np.ndarray


def load_photo(source: PhotoSource) -> Image.Image:
    """Any photo a user may hand us, as an upright 8-bit RGB PIL image.

    Accepts a path, encoded bytes, a binary file object, a PIL image or a numpy array
    ((H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16, bool, or float in 0..1).
    Transparency is composited on white (the model never saw a black or checkered
    background), 16-bit data is scaled to 8 bits, EXIF orientation is applied.
    Raises a ``PhotoError`` subclass for anything that is not a usable photo.
    """
    if isinstance(source, np.ndarray):
        return _to_rgb8(_array_to_image(source))
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        return _to_rgb8(_upright(source))
    with _open(source) as image:
        rgb = _to_rgb8(_upright(image))
        return rgb.copy() if rgb is image else rgb  # the file's image is closed next


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag: phones store portraits sideways and say so there."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block is no reason to refuse the photo
        return image


def _open(source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO
          ) -> Image.Image:
    """Decode a file or bytes, checking the size *before* the pixels are decoded."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
            _check_size(*image.size)
            image.load()
    except Image.DecompressionBombError:
        raise PhotoSizeError(
            f"The photo is too large to process; the limit is {MAX_PIXELS // 1_000_000} "
            "megapixels.") from None
    except UnidentifiedImageError:
        raise NotAnImageError(
            "This file is not an image we can read. Use a JPEG, PNG, WebP, BMP or TIFF "
            "photo.") from None
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, (PhotoError, FileNotFoundError, IsADirectoryError)):
            raise
        raise NotAnImageError(
            "The image file is damaged or incomplete and cannot be read.") from None
    return image


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PhotoSizeError(
            f"The photo is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels);"
            f" the limit is {MAX_PIXELS // 1_000_000} megapixels. Please use a smaller copy.")
    if min(width, height) < MIN_SIDE:
        raise PhotoSizeError(
            f"The photo is only {width} x {height} pixels; it needs at least {MIN_SIDE} "
            "pixels on each side to hold a face.")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any numeric pixel array to uint8: uint16 (and ints above 255) are 16-bit."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 65535:
            raise NotAnImageError(
                f"The image's pixel values run from {lo} to {hi}; expected 8 or 16 bits.")
        if (array.dtype.kind == "u" and array.dtype.itemsize == 2) or hi > 255:
            # 65535 -> 255 exactly: divide by 257, not shift by 8 (which maps white to 255
            # too, but darkens every other value by up to one level).
            return np.round(array / 257.0).astype(np.uint8)
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise NotAnImageError("The image contains invalid (NaN or infinite) pixel values.")
        scale = 255.0 if array.max() <= 1.0 else 1.0  # 0..1 (the usual float convention)
        return np.clip(np.round(array * scale), 0, 255).astype(np.uint8)
    raise NotAnImageError(f"Unsupported pixel type {array.dtype} for an image.")


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise NotAnImageError(
            f"An image array must have shape (H, W), (H, W, 3) or (H, W, 4); got {array.shape}.")
    _check_size(array.shape[1], array.shape[0])
    return Image.fromarray(np.ascontiguousarray(_to_uint8(array)))


def _to_rgb8(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB, alpha composited on white, high bit depths scaled down."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":  # I;16*, I (32-bit int), F (32-bit float)
        image = Image.fromarray(_to_uint8(np.asarray(image)))
        mode = image.mode
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError):
        raise NotAnImageError(f"Unsupported image colour mode {mode!r}.") from None
