"""The folder layout ``DATA/images/*`` + ``DATA/masks/*``, paired by file stem, read and validated up front."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import DataError, list_images, read_image
from .masks import detect_num_classes, mask_to_labels, mask_values


@dataclass
class Sample:
    """One image with its class-index label image."""

    name: str
    image: np.ndarray  # (H, W, C) as stored in the file
    labels: np.ndarray  # (H, W) class indices
    image_path: Path
    mask_path: Path


@dataclass
class FolderData:
    """A validated dataset: the samples, the number of classes and of image channels."""

    root: Path
    samples: list[Sample]
    num_classes: int
    channels: int


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
    root = Path(root)
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise DataError(f"{root}: expected a folder {root / sub} (layout: DATA/images/* and DATA/masks/*)")
    images, masks = files_by_stem(root / "images"), files_by_stem(root / "masks")
    if not images:
        raise DataError(f"{root / 'images'}: no image files (expected .png, .jpg, .tif, ...)")
    lonely = [f"{images[s]} has no mask in {root / 'masks'}" for s in sorted(set(images) - set(masks))]
    lonely += [f"{masks[s]} has no image in {root / 'images'}" for s in sorted(set(masks) - set(images))]
    if lonely:
        more = f" (and {len(lonely) - 5} more)" if len(lonely) > 5 else ""
        raise DataError("unpaired files: " + "; ".join(lonely[:5]) + more)
    return [(s, images[s], masks[s]) for s in sorted(images)]


def load_folder(root: str | os.PathLike, num_classes: int | None = None) -> FolderData:
    """Read and validate every pair of a folder dataset.

    Args:
        root: the DATA folder holding ``images/`` and ``masks/``.
        num_classes: classes in the masks including background (2 for binary); None detects it from the values.

    Raises:
        DataError: unpaired or unreadable files, image/mask size mismatches, mask values outside the classes.
    """
    pairs = pair_files(root)
    raw = []
    for stem, image_path, mask_path in pairs:
        image, mask = read_image(image_path), read_image(mask_path)
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(
                f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its image {image_path} "
                f"({image.shape[1]}x{image.shape[0]}, width x height)"
            )
        raw.append((stem, image, mask, image_path, mask_path))
    if num_classes is None:
        num_classes = detect_num_classes({str(r[4]): mask_values(r[2], r[4]) for r in raw})
    elif num_classes < 2:
        raise DataError(f"num_classes must be >= 2 (2 for binary masks), got {num_classes}")
    channels = max(_channels(r[1]) for r in raw)
    samples = [Sample(s, img, mask_to_labels(m, num_classes, mp), ip, mp) for s, img, m, ip, mp in raw]
    return FolderData(Path(root), samples, num_classes, channels)


def _channels(image: np.ndarray) -> int:
    c = 1 if image.ndim == 2 else image.shape[2]
    return c - 1 if c in (2, 4) else c  # alpha is dropped
