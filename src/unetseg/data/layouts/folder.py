"""The folder layout: ``DATA/images/<stem>.*`` + ``DATA/masks/<stem><mask_suffix>.*`` (+ ``DATA/labels/<stem>.*``
instance labels with ``instances=True``), paired by file stem.

A multi-page TIFF in ``images/`` whose mask (same stem) is also a multi-page TIFF is a *stack* (e.g. ISBI 2012
``train-volume.tif`` + ``train-labels.tif``): it is expanded into one sample per page, named ``<stem>_<page:03d>``
(page from 0). Image and mask stacks must have the same number of pages. The classes are detected from the mask
values unless given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..dataset import SegmentationData
from ..io import DataError, collect_by_stem, files_by_stem, read_image, read_instances, read_stack, tiff_pages
from .base import LAYOUTS, Raw, Reader, Scan, check_size, raise_problems
from .loading import load_dataset


def detect(root: Path) -> bool:
    """Whether ``root`` holds ``images/`` and ``masks/``."""
    return (root / "images").is_dir() and (root / "masks").is_dir()


def near(root: Path) -> str | None:
    """What is missing when ``root`` holds only one of ``images/`` and ``masks/`` (None otherwise)."""
    has = [(root / sub).is_dir() for sub in ("images", "masks")]
    return missing_folder(root) if any(has) and not all(has) else None


def missing_folder(root: Path) -> str:
    """The message for a folder dataset without ``images/`` or ``masks/``: which is missing, and the layout."""
    sub = "images" if not (root / "images").is_dir() else "masks"
    return (f"{root / sub}: missing; the folder layout needs {root / 'images'}/* and {root / 'masks'}/* (one mask "
            "per image, same name)")


@LAYOUTS.register("folder", priority=40, detect=detect, looks_for="images/ + masks/", near=near, instances=True,
                  description="images/<stem>.* + masks/<stem><suffix>.* (+ labels/<stem>.* instance labels)")
def scan(root: Path, mask_suffix: str = "", instances: bool = False) -> Scan:
    """Pair the files (see :func:`pair_folder`) and, with ``instances``, find each pair's instance label image.

    Raises:
        DataError: a missing ``images/``, ``masks/`` or (with ``instances``) ``labels/`` folder, or no images.
    """
    pairs, problems = pair_folder(root, mask_suffix)
    label_files: dict[str, Path] = {}
    if instances:
        if not (root / "labels").is_dir():
            raise DataError(f"{root}: expected a folder {root / 'labels'} with instance label images "
                            "(one per image, same stem)")
        label_files = files_by_stem(root / "labels")
        problems += [f"{root / 'labels'}: no instance label image for {ip}" for s, ip, _ in pairs
                     if s not in label_files]
    result = Scan(problems=problems)
    for stem, image_path, mask_path in pairs:
        if instances and stem not in label_files:
            continue
        result.readers.append(_reader(stem, image_path, mask_path, label_files.get(stem)))
    return result


def pair_folder(root: Path, mask_suffix: str = "") -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair ``root/images/<stem>.*`` with ``root/masks/<stem><mask_suffix>.*``.

    Returns:
        (pairs as (stem, image, mask) sorted by stem, problems): every unpaired file and duplicate stem is listed
        in the problems.

    Raises:
        DataError: a missing ``images/`` or ``masks/`` folder, or no images.
    """
    if not detect(root):
        raise DataError(missing_folder(root))
    images, problems = collect_by_stem(root / "images")
    masks, mask_problems = collect_by_stem(root / "masks", mask_suffix)
    problems += mask_problems
    if not images:
        raise DataError(f"{root / 'images'}: no image files (expected .png, .jpg, .tif, ...)")
    expect = f"<stem>{mask_suffix}.*" if mask_suffix else "<stem>.*"
    problems += [f"{images[s]} has no mask in {root / 'masks'} (expected {expect})"
                 for s in sorted(set(images) - set(masks))]
    problems += [f"{masks[s]} has no image in {root / 'images'}" for s in sorted(set(masks) - set(images))]
    return [(s, images[s], masks[s]) for s in sorted(set(images) & set(masks))], problems


def pair_files(root: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """Pair ``root/images/*`` with ``root/masks/*`` by file stem; returns (stem, image, mask) sorted by stem.

    Raises:
        DataError: missing folders, no images, duplicate stems or unpaired files (each named).
    """
    pairs, problems = pair_folder(Path(root))
    raise_problems(problems)
    return pairs


def load_folder(root: str | os.PathLike, num_classes: int | None = None, instances: bool = False,
                ignore_index: int | None = None, training: bool = False) -> SegmentationData:
    """Read and validate every pair of a folder dataset (the ``folder`` layout of :func:`.load_dataset`).

    Args:
        root: the DATA folder holding ``images/`` and ``masks/`` (and ``labels/`` with ``instances``).
        num_classes: classes in the masks including background (2 for binary); None detects it from the values.
        instances: also read the instance label image ``labels/<stem>.*`` of every sample (integer ids, 0 =
            background), e.g. for the U-Net border weight map.
        ignore_index: a mask value meaning "not annotated" (e.g. 255), kept as it is in the labels.
        training: also the checks for training data (see :func:`.load_dataset`); off by default, as this reads
            evaluation data (``unetseg evaluate``), which may hold only background.

    Raises:
        DataError: unpaired or unreadable files, image/mask size mismatches, mask values outside the classes, a
            missing ``labels/`` folder or label file, or a label image that is not an integer image of the same size.
    """
    return load_dataset(root, "folder", num_classes, instances=instances, ignore_index=ignore_index,
                        training=training)


def _reader(stem: str, image_path: Path, mask_path: Path, label_path: Path | None) -> Reader:
    """Read one pair, or one stack pair as one sample per page."""
    def read() -> list[Raw]:
        if tiff_pages(mask_path) > 1:
            return _read_stack_pair(stem, image_path, mask_path, label_path)
        image, mask = read_image(image_path), read_image(mask_path)
        check_size(image, mask, image_path, mask_path)
        inst = read_instances(label_path, mask.shape[:2]) if label_path else None
        return [Raw(stem, image, mask, image_path, mask_path, inst)]
    return read


def _read_stack_pair(stem: str, image_path: Path, mask_path: Path, label_path: Path | None) -> list[Raw]:
    """One sample per page of an image stack and its mask (and label) stack; DataError for unequal stacks."""
    images, masks = read_stack(image_path), read_stack(mask_path)
    if len(images) != len(masks):
        raise DataError(f"{mask_path}: mask stack has {len(masks)} pages, its image stack {image_path} has "
                        f"{len(images)}; expected one mask page per image page")
    labels = read_stack(label_path) if label_path else None
    if labels is not None and (len(labels) != len(images) or labels.shape[1:3] != images.shape[1:3]):
        raise DataError(f"{label_path}: label stack shape {labels.shape} does not match the image stack "
                        f"{image_path} {images.shape}")
    check_size(images[0], masks[0], image_path, mask_path, "mask stack page")
    out = []
    for i in range(len(images)):
        inst = labels[i].astype(np.int32) if labels is not None else None
        out.append(Raw(f"{stem}_{i:03d}", images[i], masks[i], image_path, mask_path, inst))
    return out
