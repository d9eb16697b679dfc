"""Microscopy axes and OME-Zarr: which planes and channels an image file holds, choosing one plane and some
channels, and reading level 0 of an OME-Zarr image (NGFF v0.4 and v0.5) with zarr alone.

The axes are named as tifffile names a TIFF series' axes: ``Y`` and ``X`` are the image, ``C`` (an OME or ImageJ
channel axis, NGFF's axis of type ``channel``) and ``S`` (samples, e.g. RGB) are channels, and every other axis
(``T`` time, ``Z`` slices, ``I``/``Q`` pages, ...) counts planes. A file with more than one plane needs a plane
chosen (``plane``: the index over all plane axes in the file's axis order, e.g. ``t * Z + z``); ``channel`` picks
channels among all of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, size_text

#: the axes holding channels: an explicit channel axis (C) and samples of a pixel (S, e.g. RGB)
CHANNEL_AXES = "SC"
#: suffix of an OME-Zarr image folder (``NAME.ome.zarr`` or ``NAME.zarr``)
ZARR_SUFFIX = ".zarr"
#: the files that make a folder a zarr group (zarr v3, zarr v2)
ZARR_GROUP_FILES = ("zarr.json", ".zgroup")
#: NGFF axis names read as the axis letters used here; an axis of type "channel" is C whatever its name
NGFF_AXES = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
#: the axis names of NGFF versions before 0.4, which did not store them (the last dimensions of t, c, z, y, x)
DEFAULT_NGFF_AXES = "TCZYX"

Channel = int | Sequence[int] | None


@dataclass(frozen=True)
class Axes:
    """The axes of an image array: ``names`` (one letter per axis, in storage order, e.g. ``"CZYX"``) and
    ``shape``."""

    names: str
    shape: tuple[int, ...]

    @property
    def sizes(self) -> dict[str, int]:
        """The size of every axis, by name."""
        return dict(zip(self.names, self.shape))

    @property
    def plane_axes(self) -> str:
        """The axes counting planes (all but Y, X and the channel axes), in storage order."""
        return "".join(a for a in self.names if a not in CHANNEL_AXES + "YX")

    @property
    def planes(self) -> int:
        """The number of 2-D planes (1 when there is no plane axis)."""
        return math.prod(self.sizes[a] for a in self.plane_axes)

    @property
    def channels(self) -> int:
        """The number of channels of a plane (1 when there is no channel axis)."""
        return math.prod(self.sizes[a] for a in self.names if a in CHANNEL_AXES)

    @property
    def height(self) -> int:
        """The image height (the size of Y)."""
        return self.sizes["Y"]

    @property
    def width(self) -> int:
        """The image width (the size of X)."""
        return self.sizes["X"]

    def describe(self) -> str:
        """What the array holds, e.g. ``"5 planes (Z) of 512x512 pixels with 2 channels (C)"``."""
        sizes = self.sizes
        text = size_text(self.width, self.height)
        if self.planes > 1:
            many = [a for a in self.plane_axes if sizes[a] > 1]
            which = many[0] if len(many) == 1 else " x ".join(f"{a}={sizes[a]}" for a in many)
            text = f"{self.planes} planes ({which}) of {text}"
        if self.channels > 1:
            names = ", ".join("RGB" if a == "S" else a for a in self.names if a in CHANNEL_AXES and sizes[a] > 1)
            text += f" with {self.channels} channels ({names})"
        return text

    def explicit_channels(self) -> int:
        """The channels of an explicit channel axis (C), e.g. of a fluorescence OME image (0 without one): they
        are never taken as alpha or averaged to grey."""
        return self.sizes.get("C", 0)


def check_axes(names: str, shape: Sequence[int], path: str | os.PathLike) -> Axes:
    """``Axes(names, shape)`` when they describe 2-D images with pixels.

    Raises:
        DataError: naming ``path``: no Y or X axis, a repeated axis, as many names as dimensions missing, or an
            empty axis.
    """
    shape = tuple(int(n) for n in shape)
    if "Y" not in names or "X" not in names or len(names) != len(shape) or len(set(names)) != len(names):
        raise DataError(f"{path}: an array of shape {shape} with axes {names!r}, not 2-D images; expected axes with "
                        "Y and X (and optionally T, C, Z)")
    if 0 in shape:
        raise DataError(f"{path}: an empty image (shape {shape}, axes {names!r}); expected a 2-D image with pixels")
    return Axes(names, shape)


def plane_index(axes: Axes, plane: int | None, path: str | os.PathLike) -> tuple[int | slice, ...]:
    """The index of one plane of an array with ``axes``: an integer for each plane axis, all of Y, X and channels.

    Args:
        axes: the array's axes.
        plane: the plane (in the file's axis order over all plane axes); None: the only plane.
        path: the file, for messages.

    Raises:
        DataError: ``plane`` is None and there are several planes, or it is out of range; the message names the
            file, its axes and sizes, and the option.
    """
    n = axes.planes
    if plane is None and n > 1:
        raise DataError(f"{path} has {axes.describe()}; choose one with --plane 0..{n - 1} (data.plane)")
    if plane is not None and not 0 <= plane < n:
        raise DataError(f"{path}: --plane {plane} is out of range: the file has {axes.describe()}; choose one with "
                        f"--plane 0..{n - 1}")
    sizes = axes.sizes
    position = dict(zip(axes.plane_axes, np.unravel_index(plane or 0, [sizes[a] for a in axes.plane_axes])))
    return tuple(int(position[a]) if a in position else slice(None) for a in axes.names)


def plane_to_yxc(plane: np.ndarray, axes: Axes) -> np.ndarray:
    """One plane (the array indexed by :func:`plane_index`, its remaining axes in storage order) as (H, W, C)."""
    rest = [a for a in axes.names if a not in axes.plane_axes]
    order = [rest.index("Y"), rest.index("X"), *(i for i, a in enumerate(rest) if a in CHANNEL_AXES)]
    return np.ascontiguousarray(np.transpose(plane, order)).reshape(axes.height, axes.width, axes.channels)


def stack_to_nyxc(array: np.ndarray, axes: Axes) -> np.ndarray:
    """An array with ``axes`` as (planes, H, W, C)."""
    names = axes.names
    order = [*(names.index(a) for a in axes.plane_axes), names.index("Y"), names.index("X"),
             *(i for i, a in enumerate(names) if a in CHANNEL_AXES)]
    return np.ascontiguousarray(np.transpose(array, order)).reshape(axes.planes, axes.height, axes.width,
                                                                  axes.channels)


def select_channels(image: np.ndarray, channel: Channel, path: str | os.PathLike, what: str = "") -> np.ndarray:
    """The channels ``channel`` of an (H, W) or (H, W, C) image: one index gives (H, W), a list (H, W, len).

    Args:
        image: the image.
        channel: a channel index, a list of them, or None (every channel: ``image`` is returned unchanged).
        path: the file, for messages.
        what: the image's axes (:meth:`Axes.describe`), for messages.

    Raises:
        DataError: an index outside the image's channels, or an empty list; naming the file and the option.
    """
    if channel is None:
        return image
    stack = image if image.ndim == 3 else image[:, :, None]
    count = stack.shape[2]
    picks = [channel] if isinstance(channel, (int, np.integer)) else list(channel)
    about = f" ({what})" if what else ""
    if not picks or any(not isinstance(c, (int, np.integer)) or not 0 <= c < count for c in picks):
        raise DataError(f"{path}: --channel {' '.join(map(str, picks)) or '(none)'} does not name channels of this "
                        f"image: it has {count} channel{'s' if count != 1 else ''}{about}; choose from "
                        f"--channel 0..{count - 1} (data.channel)")
    picked = stack[:, :, [int(c) for c in picks]]
    return picked[:, :, 0] if len(picks) == 1 else picked


# ------------------------------------------------------------------------------------------------------ OME-Zarr

def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an OME-Zarr image: named ``NAME.ome.zarr`` or ``NAME.zarr``, or a folder holding zarr
    group metadata (e.g. the label image ``NAME.ome.zarr/labels/cells``)."""
    path = Path(path)
    if path.suffix.lower() == ZARR_SUFFIX:
        return True
    return path.is_dir() and any((path / name).is_file() for name in ZARR_GROUP_FILES)


@dataclass(frozen=True)
class ZarrImage:
    """Level 0 of an OME-Zarr image, not read yet: ``array`` (a zarr array) with its ``axes``; ``version`` is
    the NGFF version of the metadata."""

    path: Path
    axes: Axes
    array: Any
    version: str


def open_zarr(path: str | os.PathLike) -> ZarrImage:
    """Open level 0 (the first dataset of the first multiscales entry) of the OME-Zarr image ``path``; no pixel is
    read. The axes come from the metadata (NGFF v0.4: the group's ``multiscales``; v0.5: ``ome.multiscales``; a
    bioformats2raw folder: its image ``0``).

    Raises:
        DataError: naming ``path``: not a folder, not a zarr group, no multiscales metadata, or axes that are not
            2-D images.
    """
    path = Path(path)
    if not path.is_dir():
        what = "no such folder" if not path.exists() else "a file, not a folder"
        raise DataError(f"{path}: {what}; an OME-Zarr image is a folder NAME.ome.zarr holding NGFF metadata "
                        "(.zattrs or zarr.json) and the image arrays")
    import zarr  # a core dependency, imported when an OME-Zarr image is read

    try:
        group = zarr.open_group(path, mode="r")
        attrs = dict(group.attrs)
        if _multiscales(attrs)[0] is None and "bioformats2raw.layout" in attrs:
            group = group["0"]
            attrs = dict(group.attrs)
    except Exception as err:  # zarr raises many types on a folder that is not a zarr group
        raise DataError(f"{path}: cannot open the OME-Zarr image ({type(err).__name__}: {err}); expected a folder "
                        "written as OME-Zarr (NGFF v0.4 or v0.5): re-save it, or replace it") from err
    multiscales, version = _multiscales(attrs)
    if not multiscales:
        raise DataError(f"{path}: no OME-NGFF 'multiscales' metadata in the zarr group; expected an OME-Zarr image "
                        "(NGFF v0.4 or v0.5, as written by ome-zarr-py, bioformats2raw or napari)")
    return _level0(path, group, multiscales[0], version)


def _multiscales(attrs: Mapping[str, Any]) -> tuple[list | None, str]:
    """(the multiscales list, the NGFF version) of a group's attributes; (None, "") without them."""
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and isinstance(ome.get("multiscales"), list):
        return ome["multiscales"], str(ome.get("version", "0.5"))
    multiscales = attrs.get("multiscales")
    if isinstance(multiscales, list) and multiscales:
        entry = multiscales[0] if isinstance(multiscales[0], Mapping) else {}
        return multiscales, str(entry.get("version", "0.4"))
    return None, ""


def _level0(path: Path, group: Any, entry: Any, version: str) -> ZarrImage:
    """The first dataset of one multiscales ``entry`` with its axes."""
    datasets = entry.get("datasets") if isinstance(entry, Mapping) else None
    if not isinstance(datasets, list) or not datasets or not isinstance(datasets[0], Mapping) \
            or not isinstance(datasets[0].get("path"), str):
        raise DataError(f"{path}: the multiscales metadata lists no dataset path; expected 'datasets': "
                        "[{'path': '0'}, ...] (NGFF v0.4/v0.5)")
    level = datasets[0]["path"]
    try:
        array = group[level]
        shape = tuple(int(n) for n in array.shape)
    except Exception as err:  # a missing or damaged array
        raise DataError(f"{path}: cannot open its level-0 array {level!r} ({type(err).__name__}: {err}); the "
                        "OME-Zarr image is incomplete: re-save it") from err
    names = _axis_names(entry.get("axes"), len(shape), path)
    return ZarrImage(path, check_axes(names, shape, path), array, version)


def _axis_names(axes: Any, ndim: int, path: Path) -> str:
    """The axis letters of NGFF ``axes`` (a list of {name, type} or, before v0.4, of names; missing: the last
    ``ndim`` of t, c, z, y, x)."""
    if axes is None:
        if ndim > len(DEFAULT_NGFF_AXES):
            raise DataError(f"{path}: {ndim} dimensions and no axes in the metadata; expected at most 5 (t, c, z, y, "
                            "x) or named axes: re-save it as NGFF v0.4 or v0.5")
        return DEFAULT_NGFF_AXES[-ndim:]
    if not isinstance(axes, list) or len(axes) != ndim:
        raise DataError(f"{path}: the multiscales axes {axes!r} do not match the {ndim} dimensions of level 0; "
                        "expected one axis per dimension: the metadata is damaged, re-save the image")
    letters = []
    for axis in axes:
        name, kind = (axis.get("name"), axis.get("type")) if isinstance(axis, Mapping) else (axis, None)
        if kind == "channel":
            letters.append("C")
        elif isinstance(name, str) and name.lower() in NGFF_AXES:
            letters.append(NGFF_AXES[name.lower()])
        else:
            letters.append("Q")  # another axis: it counts planes, like an unknown TIFF axis
    return "".join(letters)


def read_zarr_plane(image: ZarrImage, plane: int | None) -> np.ndarray:
    """One plane of level 0 as (H, W, C), only its chunks read (see :func:`plane_index` for ``plane``).

    Raises:
        DataError: a plane to choose or out of range, or chunks that cannot be read or decoded.
    """
    index = plane_index(image.axes, plane, image.path)
    return plane_to_yxc(_read(image, index), image.axes)


def read_zarr_stack(image: ZarrImage) -> np.ndarray:
    """Every plane of level 0 as (N, H, W, C).

    Raises:
        DataError: chunks that cannot be read or decoded.
    """
    return stack_to_nyxc(_read(image, ()), image.axes)


def _read(image: ZarrImage, index: tuple[int | slice, ...]) -> np.ndarray:
    """``image.array[index]`` as a NumPy array; a failure is a DataError naming the file."""
    try:
        return np.asarray(image.array[index])
    except Exception as err:  # missing or damaged chunks, a codec this zarr lacks, ...
        raise DataError(f"{image.path}: cannot read the OME-Zarr pixel data ({type(err).__name__}: {err}); the "
                        "image is incomplete or damaged: re-save it, or replace it") from err
