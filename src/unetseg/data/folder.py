"""The folder layout ``DATA/images/*`` + ``DATA/masks/*`` (+ optional ``DATA/labels/*`` instance labels), paired by
file stem, read and validated up front."""

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
    instances: np.ndarray | None = None  # (H, W) instance labels (0 = background, 1..N objects) when read


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


def load_folder(root: str | os.PathLike, num_classes: int | None = None, instances: bool = False) -> FolderData:
    """Read and validate every pair of a folder dataset.

    Args:
        root: the DATA folder holding ``images/`` and ``masks/`` (and ``labels/`` with ``instances``).
        num_classes: classes in the masks including background (2 for binary); None detects it from the values.
        instances: also read the instance label image ``labels/<stem>.*`` of every sample (integer ids, 0 =
            background), e.g. for the U-Net border weight map.

    Raises:
        DataError: unpaired or unreadable files, image/mask size mismatches, mask values outside the classes, a
            missing ``labels/`` folder or label file, or a label image that is not an integer image of the same size.
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
    if instances:
        for sample, label_path in zip(samples, _label_files(Path(root), [s.name for s in samples])):
            sample.instances = _read_instances(label_path, sample.labels.shape)
    return FolderData(Path(root), samples, num_classes, channels)


def _label_files(root: Path, stems: list[str]) -> list[Path]:
    folder = root / "labels"
    if not folder.is_dir():
        raise DataError(f"{root}: expected a folder {folder} with instance label images (one per image, same stem)")
    files = files_by_stem(folder)
    missing = [s for s in stems if s not in files]
    if missing:
        raise DataError(f"{folder}: no instance label image for {len(missing)} image(s), e.g. {missing[0]!r}")
    return [files[s] for s in stems]


def _read_instances(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    labels = read_image(path)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a single-channel integer instance label image, got {labels.dtype} "
                        f"with shape {labels.shape}")
    if labels.shape != shape:
        raise DataError(f"{path}: label image is {labels.shape[1]}x{labels.shape[0]}, its image "
                        f"{shape[1]}x{shape[0]} (width x height)")
    return labels.astype(np.int32)


def _channels(image: np.ndarray) -> int:
    c = 1 if image.ndim == 2 else image.shape[2]
    return c - 1 if c in (2, 4) else c  # alpha is dropped
