"""Reading and writing images: PNG, JPEG, BMP and TIFF, grey or RGB, 8- or 16-bit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..fileio import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class DataError(ValueError):
    """Bad input data; the message names the file and says what was expected."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a NumPy array.

    Returns:
        (H, W) for single-channel images, (H, W, C) otherwise, in the file's dtype (uint8, uint16, float32, ...).
        Palette images are returned as their index values; alpha channels are kept (callers decide).

    Raises:
        DataError: the file is missing, unreadable, or not a 2-D image.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = tifffile.imread(path)
        else:
            with Image.open(path) as image:
                if image.mode == "P":
                    array = np.asarray(image)
                elif image.mode in ("I;16", "I;16B", "I;16L"):
                    array = np.asarray(image).astype(np.uint16)
                else:
                    array = np.asarray(image)
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (OSError, UnidentifiedImageError, ValueError, tifffile.TiffFileError) as err:
        raise DataError(f"{path}: cannot read the image ({err})") from err
    if array.ndim == 3 and array.shape[0] < 5 and array.shape[-1] > 4:
        array = np.moveaxis(array, 0, -1)  # channel-first TIFF
    if array.ndim not in (2, 3):
        raise DataError(f"{path}: expected a 2-D image (H, W) or (H, W, C), got shape {array.shape}")
    return array


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 (grey or RGB) or uint16 (grey) array as PNG, atomically.

    Raises:
        ValueError: the dtype/shape cannot be stored as PNG.
    """
    if array.dtype == np.uint16 and array.ndim == 2:
        image = Image.fromarray(array)
    elif array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        image = Image.fromarray(array)
    else:
        raise ValueError(f"{path}: cannot write an array of dtype {array.dtype} and shape {array.shape} as PNG")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def to_channels(image: np.ndarray, channels: int, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Return ``image`` as (H, W, channels): drops alpha, repeats grey to RGB, averages RGB to grey.

    Raises:
        DataError: a channel count that cannot be converted (names ``path``).
    """
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c in (2, 4):  # grey+alpha, RGBA: drop alpha
        image, c = image[:, :, : c - 1], c - 1
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if c == 3 and channels == 1:
        return image.astype(np.float32).mean(axis=2, keepdims=True)
    raise DataError(f"{path}: image has {c} channel(s), the model expects {channels}")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, hidden files skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
