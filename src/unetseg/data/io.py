"""Reading and writing images: PNG, JPEG, BMP and TIFF, grey or RGB, 8- or 16-bit."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..fileio import atomic_path
from .channels import drop_alpha, real_channels

logger = logging.getLogger(__name__)

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
    grey16 = array.dtype == np.uint16 and array.ndim == 2
    grey_or_colour8 = array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)))
    if not (grey16 or grey_or_colour8):
        raise ValueError(f"{path}: cannot write an array of dtype {array.dtype} and shape {array.shape} as PNG")
    image = Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def to_channels(image: np.ndarray, channels: int, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Return ``image`` as (H, W, channels): drops alpha, repeats grey to RGB, averages RGB to grey.

    An image that already has ``channels`` channels is returned unchanged (so 2 or 4 real channels are kept when
    the model expects 2 or 4); otherwise a 2nd/4th channel is taken as alpha and dropped (logged once).

    Raises:
        DataError: a channel count that cannot be converted (names ``path``).
    """
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c == channels:  # e.g. a 2- or 4-channel nnU-Net image with as many real channels as the model expects
        return image
    if real_channels(c) != c:  # grey+alpha, RGBA: drop alpha
        if not _alpha_noted:
            _note_alpha(path, c)
        image = drop_alpha(image)
        c = image.shape[2]
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if c == 3 and channels == 1:
        return image.astype(np.float32).mean(axis=2, keepdims=True)
    raise DataError(f"{path}: image has {c} channel(s), the model expects {channels}")


_alpha_noted = False


def _note_alpha(path: str | os.PathLike, c: int) -> None:
    """Log once per process that alpha channels are dropped (the first file is named)."""
    global _alpha_noted
    _alpha_noted = True
    logger.info("%s: %d channels with alpha; the alpha channel is dropped (noted once)", path, c)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, hidden files skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def files_by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    """The image files of ``folder`` keyed by stem.

    Raises:
        DataError: ``folder`` is not a folder, or two files share a stem (both named).
    """
    files, problems = collect_by_stem(folder)
    if problems:
        raise DataError(problems[0])
    return files


def collect_by_stem(folder: str | os.PathLike, suffix: str = "") -> tuple[dict[str, Path], list[str]]:
    """The image files of ``folder`` keyed by stem, collecting problems instead of raising.

    Args:
        folder: the folder to list.
        suffix: a suffix every stem must end with (e.g. ``_mask``); it is cut off the key.

    Returns:
        (files by stem, problems): a file whose stem lacks ``suffix`` or repeats another file's stem is left out
        and named in ``problems``.

    Raises:
        DataError: ``folder`` is not a folder.
    """
    files: dict[str, Path] = {}
    problems: list[str] = []
    for path in list_images(folder):
        stem = path.stem
        if suffix:
            if not stem.endswith(suffix):
                problems.append(f"{path}: mask name does not end with the mask suffix {suffix!r}")
                continue
            stem = stem[: -len(suffix)]
        if stem in files:
            problems.append(f"{path}: two files share the stem {stem!r} (the other is {files[stem].name})")
            continue
        files[stem] = path
    return files, problems


def read_instances(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """Read an instance label image as int32 (0 = background, 1..N objects).

    Raises:
        DataError: the file is unreadable, not a single-channel integer image, or not of (H, W) ``shape``.
    """
    labels = read_image(path)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a single-channel integer instance label image, got {labels.dtype} "
                        f"with shape {labels.shape}")
    if labels.shape != shape:
        raise DataError(f"{path}: label image is {labels.shape[1]}x{labels.shape[0]}, its image "
                        f"{shape[1]}x{shape[0]} (width x height)")
    return labels.astype(np.int32)


def tiff_pages(path: str | os.PathLike) -> int:
    """Number of pages of a TIFF file (1 for other formats).

    Raises:
        DataError: the file is missing or not a readable TIFF.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (OSError, ValueError, tifffile.TiffFileError) as err:
        raise DataError(f"{path}: cannot read the TIFF ({err})") from err


def read_stack(path: str | os.PathLike) -> np.ndarray:
    """Read a multi-page TIFF stack (e.g. ISBI 2012's ``train-volume.tif``) as (N, H, W) or (N, H, W, C).

    Each page is one 2-D image, in the file's dtype (16-bit stays uint16). A single-page TIFF or any other image
    file gives N = 1 (read with :func:`read_image`).

    Raises:
        DataError: the file is missing or unreadable, or its pages are not 2-D images.
    """
    path = Path(path)
    if tiff_pages(path) <= 1:
        return read_image(path)[None]
    try:
        with tifffile.TiffFile(path) as tif:
            array = np.stack([page.asarray() for page in tif.pages])
    except (OSError, ValueError, tifffile.TiffFileError) as err:
        raise DataError(f"{path}: cannot read the TIFF stack ({err})") from err
    if array.ndim not in (3, 4):
        raise DataError(f"{path}: expected a stack of 2-D pages (N, H, W) or (N, H, W, C), got shape {array.shape}")
    return array


def load_colormap(path: str | os.PathLike) -> dict[int, tuple[int, int, int]]:
    """Read a colour map file (YAML or JSON) mapping class index -> [R, G, B], e.g. ``{0: [0, 0, 0], 1: [255, 0, 0]}``.

    Raises:
        DataError: the file is missing or unreadable, or an entry is not ``index: [R, G, B]`` with 0..255 values, or
            two classes share a colour.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"{path}: cannot read the colour map ({err})") from err
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise DataError(f"{path}: cannot parse the colour map ({err})") from err
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a mapping of class index -> [R, G, B], got {type(raw).__name__}")
    colormap: dict[int, tuple[int, int, int]] = {}
    seen: dict[tuple[int, int, int], int] = {}
    for key, value in raw.items():
        try:
            index = int(key)
            rgb = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise DataError(f"{path}: entry {key!r}: {value!r}; expected class index -> [R, G, B]") from None
        if index < 0 or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise DataError(f"{path}: entry {key!r}: {value!r}; expected index >= 0 and [R, G, B] in 0..255")
        if rgb in seen:
            raise DataError(f"{path}: classes {seen[rgb]} and {index} share the colour {list(rgb)}")
        seen[rgb] = index
        colormap[index] = rgb  # type: ignore[assignment]
    return colormap


def colour_mask_to_labels(mask: np.ndarray, colormap: dict[int, tuple[int, int, int]],
                          path: str | os.PathLike = "<array>") -> np.ndarray:
    """Convert an RGB(A) colour-coded mask (H, W, 3|4) to class indices (uint8, or int32 for > 256 classes).

    Raises:
        DataError: the mask is not RGB, or has a colour missing from the colour map (names ``path``, the colour,
            and a pixel where it occurs).
    """
    if mask.ndim != 3 or mask.shape[2] not in (3, 4):
        raise DataError(f"{path}: expected an RGB colour mask (H, W, 3), got shape {mask.shape}")
    rgb = mask[:, :, :3].astype(np.int64)
    codes = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in colormap.items()}
    uniq, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(u) for u in uniq if int(u) not in table]
    if unknown:
        u = unknown[0]
        y, x = np.argwhere(codes == u)[0]
        more = f" (and {len(unknown) - 1} more unknown colours)" if len(unknown) > 1 else ""
        raise DataError(f"{path}: colour {[u >> 16, (u >> 8) & 255, u & 255]} at (x={x}, y={y}) is not in the colour "
                        f"map (known: {sorted(colormap)}){more}")
    dtype = np.uint8 if max(colormap) < 256 else np.int32
    values = np.array([table[int(u)] for u in uniq], dtype=dtype)
    return values[inverse.reshape(codes.shape)]


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as TIFF (any dtype; (K, H, W) becomes K pages), atomically, zlib-compressed."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression="zlib")
