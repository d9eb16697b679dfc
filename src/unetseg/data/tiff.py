"""What a TIFF file holds, read from its structure before any pixel is decoded: how many 2-D images (pages), of what
size, with how many channels; and the pixels of all of them as (N, H, W[, C]).

Pages and channels are told apart by tifffile's series axes: ``Y`` and ``X`` are the image, ``S`` (samples, e.g.
RGB) and ``C`` (an ImageJ/OME hyperstack's channel axis) are channels, every other axis (``I`` pages, ``Q``
unknown, ``Z`` slices, ``T`` time, ...) counts pages. Series after the first with the same image size and channels
(e.g. pages written one at a time, each its own series) are further pages; others (thumbnails) are left out.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from .errors import DataError

CHANNEL_AXES = "SC"

Geometry = tuple[int, int, int, int]  # (pages, height, width, channels)

TIFFFILE_LOG = logging.getLogger("tifffile")


@dataclass(frozen=True)
class TiffLayout:
    """The 2-D images of a TIFF file: ``pages`` images of ``height`` x ``width`` with ``channels`` channels."""

    pages: int
    height: int
    width: int
    channels: int
    axes: str  # the first series' axes, as tifffile names them


def tiff_layout(path: str | os.PathLike) -> TiffLayout:
    """The layout of the TIFF file ``path`` (its structure only; no pixel data is decoded).

    Raises:
        DataError: the file is missing, not a readable TIFF, or holds no 2-D image.
    """
    path = Path(path)
    with _opened(path) as tif:
        images = _images(tif, path)
    pages = sum(geometry[0] for _, geometry in images)
    _, height, width, channels = images[0][1]
    return TiffLayout(pages, height, width, channels, str(images[0][0].axes))


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Every 2-D image of the TIFF file ``path`` (see :func:`tiff_layout`) as (N, H, W) or (N, H, W, C), in the
    file's dtype. Check the size with :func:`tiff_layout` first: this decodes everything.

    Raises:
        DataError: the file is missing or its data cannot be decoded (truncated, unknown compression, ...).
    """
    path = Path(path)
    with _opened(path) as tif:
        images = _images(tif, path)
        try:
            arrays = [_pages_first(series.asarray(), str(series.axes), geometry) for series, geometry in images]
        except Exception as err:  # any decoder failure on this file (truncated data, bad codec, ...) is the file's
            raise DataError(f"{path}: cannot decode the TIFF image data ({type(err).__name__}: {err}); "
                            "re-save the file, or replace it") from err
    array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return array[..., 0] if images[0][1][3] == 1 else array


@contextmanager
def _opened(path: Path) -> Iterator[tifffile.TiffFile]:
    """``tifffile.TiffFile(path)``, its failure a DataError naming the file. While it is open, tifffile's log
    messages and warnings about a damaged file are silenced: the error raised says what is wrong (and a file read
    despite them is usable)."""
    level = TIFFFILE_LOG.level
    TIFFFILE_LOG.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                tif = tifffile.TiffFile(path)
            except FileNotFoundError as err:
                raise DataError(f"{path}: file not found") from err
            except Exception as err:  # tifffile raises many types on a damaged or foreign file: "not readable"
                raise DataError(f"{path}: cannot read the TIFF ({type(err).__name__}: {err}); expected a TIFF "
                                "image: re-save the file, or replace it") from err
            with tif:
                yield tif
    finally:
        TIFFFILE_LOG.setLevel(level)


def _images(tif: tifffile.TiffFile, path: Path) -> list[tuple[tifffile.TiffPageSeries, Geometry]]:
    """The first series and the further series of the same image size and channels, with their geometry.

    Raises:
        DataError: the file has no series, its page structure cannot be parsed, or the first series is not made of
            2-D images.
    """
    try:
        series = list(tif.series)
    except Exception as err:  # damaged page structure
        raise DataError(f"{path}: cannot read the TIFF's page structure ({type(err).__name__}: {err}); "
                        "re-save the file, or replace it") from err
    if not series:
        raise DataError(f"{path}: the TIFF holds no image; expected a 2-D image (grey or RGB)")
    first = _geometry(series[0], path)
    images = [(series[0], first)]
    for more in series[1:]:
        geometry = _same_geometry(more)
        if geometry is not None and geometry[1:] == first[1:]:
            images.append((more, geometry))
    return images


def _geometry(series: tifffile.TiffPageSeries, path: Path) -> Geometry:
    """(pages, height, width, channels) of one series from its axes; DataError when it is not made of 2-D images."""
    try:
        axes, shape = str(series.axes), tuple(int(n) for n in series.shape)
    except Exception as err:  # damaged tags
        raise DataError(f"{path}: cannot read the TIFF's image shape ({type(err).__name__}: {err})") from err
    if 0 in shape:
        raise DataError(f"{path}: the TIFF holds an empty image (shape {shape}, axes {axes!r}); expected a 2-D image "
                        "with pixels")
    if "Y" not in axes or "X" not in axes or len(axes) != len(shape) or len(set(axes)) != len(axes):
        raise DataError(f"{path}: the TIFF holds an array of shape {shape} (axes {axes!r}), not 2-D images; "
                        "expected a 2-D image (grey or RGB)")
    size = dict(zip(axes, shape))
    channels = math.prod(size[a] for a in axes if a in CHANNEL_AXES)
    pages = math.prod(size[a] for a in axes if a not in CHANNEL_AXES + "YX")
    return pages, size["Y"], size["X"], channels


def _same_geometry(series: tifffile.TiffPageSeries) -> Geometry | None:
    """:func:`_geometry` of a further series, or None when it cannot be read (it is then left out)."""
    try:
        return _geometry(series, Path(""))
    except DataError:
        return None


def _pages_first(array: np.ndarray, axes: str, geometry: Geometry) -> np.ndarray:
    """``array`` (laid out by ``axes``) as (pages, H, W, channels)."""
    pages_axes = [i for i, a in enumerate(axes) if a not in CHANNEL_AXES + "YX"]
    channel_axes = [i for i, a in enumerate(axes) if a in CHANNEL_AXES]
    order = [*pages_axes, axes.index("Y"), axes.index("X"), *channel_axes]
    return np.ascontiguousarray(np.transpose(array, order)).reshape(geometry)
