"""The folder layout ``DATA/images/*`` + ``DATA/masks/*`` (+ optional ``DATA/labels/*`` instance labels), paired by
file stem, read and validated up front."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import DataError, list_images, read_image


@dataclass
class Sample:
    """One image with its class-index label image."""

    name: str
    image: np.ndarray  # (H, W, C) as stored in the file
    labels: np.ndarray  # (H, W) class indices
    image_path: Path
    mask_path: Path
    instances: np.ndarray | None = None  # (H, W) instance labels (0 = background, 1..N objects) when read


@dataclass
class FolderData:
    """A validated dataset: the samples, the number of classes and of image channels."""

    root: Path
    samples: list[Sample]
    num_classes: int
    channels: int
    ignore_index: int | None = None  # the label value meaning "not annotated" (255 for voc/cityscapes), if any


def files_by_stem(folder: Path) -> dict[str, Path]:
    """The image files of ``folder`` keyed by stem; DataError when two files share a stem."""
    files: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in files:
            raise DataError(f"{path}: two files share the stem {path.stem!r} (the other is {files[path.stem].name})")
        files[path.stem] = path
    return files


def pair_files(root: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """Pair ``root/images/*`` with ``root/masks/*`` by file stem; returns (stem, image, mask) sorted by stem.

    Raises:
        DataError: missing folders, no images, duplicate stems or unpaired files (each named).
    """
    from .layouts import pair_folder, raise_problems

    pairs, problems = pair_folder(Path(root))
    raise_problems(problems)
    return pairs


def load_folder(root: str | os.PathLike, num_classes: int | None = None, instances: bool = False,
                ignore_index: int | None = None) -> FolderData:
    """Read and validate every pair of a folder dataset (the ``folder`` layout of
    :func:`unetseg.data.layouts.load_dataset`).

    Args:
        root: the DATA folder holding ``images/`` and ``masks/`` (and ``labels/`` with ``instances``).
        num_classes: classes in the masks including background (2 for binary); None detects it from the values.
        instances: also read the instance label image ``labels/<stem>.*`` of every sample (integer ids, 0 =
            background), e.g. for the U-Net border weight map.
        ignore_index: a mask value meaning "not annotated" (e.g. 255), kept as it is in the labels.

    Raises:
        DataError: unpaired or unreadable files, image/mask size mismatches, mask values outside the classes, a
            missing ``labels/`` folder or label file, or a label image that is not an integer image of the same size.
    """
    from .layouts import load_dataset

    return load_dataset(root, "folder", num_classes, instances=instances, ignore_index=ignore_index)


def read_instances(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read an instance label image (int32, 0 = background); DataError unless single-channel integer of ``shape``."""
    labels = read_image(path)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a single-channel integer instance label image, got {labels.dtype} "
                        f"with shape {labels.shape}")
    if labels.shape != shape:
        raise DataError(f"{path}: label image is {labels.shape[1]}x{labels.shape[0]}, its image "
                        f"{shape[1]}x{shape[0]} (width x height)")
    return labels.astype(np.int32)


def image_channels(image: np.ndarray) -> int:
    """Channels of an (H, W[, C]) image once alpha is dropped (2 -> 1, 4 -> 3)."""
    c = 1 if image.ndim == 2 else image.shape[2]
    return c - 1 if c in (2, 4) else c
