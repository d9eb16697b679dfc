"""The folder layout: ``DATA/images/<stem>.*`` + ``DATA/masks/<stem><mask_suffix>.*`` (+ ``DATA/labels/<stem>.*``
instance labels with ``instances=True``), paired by file stem.

Partial annotations: when ``DATA/regions/`` exists (and ``annotated_regions`` is on, the default), its image
``regions/<stem>.*`` marks the annotated part of image ``<stem>``: non-zero = annotated. The other pixels get the
ignore value (255, or ``ignore_index`` when one is given) in the class labels, so they are left out of the loss
and the metrics. An image without a region file is annotated everywhere; a region file without an image is a
problem. A region of a stack is a stack of as many pages, or one page for every page.

A multi-page TIFF in ``images/`` whose mask (same stem) is also a multi-page TIFF is a *stack* (e.g. ISBI 2012
``train-volume.tif`` + ``train-labels.tif``): it is expanded into one sample per page, named ``<stem>_<page:03d>``
(page from 0). Image and mask stacks must have the same number of pages. The classes are detected from the mask
values unless given.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..dataset import SegmentationData
from ..io import DataError, collect_by_stem, files_by_stem, read_image, read_instances, read_stack, tiff_pages
from ..masks import single_channel
from .base import LAYOUTS, Raw, Reader, Scan, check_size, raise_problems
from .loading import load_dataset

logger = logging.getLogger(__name__)


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
def scan(root: Path, mask_suffix: str = "", instances: bool = False, annotated_regions: bool = True,
         channel: list[int] | None = None, plane: int | None = None) -> Scan:
    """Pair the files (see :func:`pair_folder`) and, with ``instances``, find each pair's instance label image;
    with ``annotated_regions``, each pair's annotated-region mask in ``regions/`` when that folder exists.

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
    regions = region_files(root, {stem for stem, _, _ in pairs}, problems) if annotated_regions else {}
    result = Scan(problems=problems)
    for stem, image_path, mask_path in pairs:
        if instances and stem not in label_files:
            continue
        result.readers.append(_reader(stem, image_path, mask_path, label_files.get(stem), regions.get(stem), channel,
                                      plane))
    return result


def region_files(root: Path, stems: set[str], problems: list[str]) -> dict[str, Path]:
    """The annotated-region masks ``root/regions/<stem>.*`` by stem ({} without that folder); a region without an
    image is added to ``problems``, images without a region are logged (they are annotated everywhere)."""
    folder = root / "regions"
    if not folder.is_dir():
        return {}
    files, found = collect_by_stem(folder)
    problems += found + [f"{files[s]}: an annotated-region mask without an image in {root / 'images'} (expected "
                         f"images/{s}.*)" for s in sorted(set(files) - stems)]
    without = len(stems - set(files))
    rest = f"; {without} image(s) without one are annotated everywhere" if without else ""
    logger.info("%s: annotated regions from %d mask(s); pixels outside them are not annotated (ignored)%s", folder,
                len(set(files) & stems), rest)
    return {s: p for s, p in files.items() if s in stems}


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


def _reader(stem: str, image_path: Path, mask_path: Path, label_path: Path | None,
            region_path: Path | None = None, channel: list[int] | None = None, plane: int | None = None) -> Reader:
    """Read one pair, or one stack pair as one sample per page (with the annotated region, if any)."""
    def read() -> list[Raw]:
        if plane is None and tiff_pages(mask_path) > 1:
            raws = _read_stack_pair(stem, image_path, mask_path, label_path, channel)
        else:
            image, mask = read_image(image_path, channel, plane), read_image(mask_path, plane=plane)
            check_size(image, mask, image_path, mask_path)
            inst = read_instances(label_path, mask.shape[:2], plane) if label_path else None
            raws = [Raw(stem, image, mask, image_path, mask_path, inst)]
        if region_path is not None:
            for raw, annotated in zip(raws, read_regions(region_path, raws[0].image, image_path, len(raws))):
                raw.annotated = annotated
        return raws
    return read


def read_regions(path: Path, image: np.ndarray, image_path: Path, pages: int) -> list[np.ndarray]:
    """The annotated-region mask (non-zero = annotated) of each of ``pages`` pages of ``image_path``, as bool.

    Raises:
        DataError: unreadable, a colour image, another size, or a stack of another page count (names ``path``).
    """
    stack = read_stack(path)
    if len(stack) not in (1, pages):
        raise DataError(f"{path}: an annotated-region stack of {len(stack)} pages for {pages} image page(s) of "
                        f"{image_path}; expected one region per page, or one for every page")
    regions = []
    for page in stack:
        region = single_channel(page, path)
        check_size(image, region, image_path, path, "annotated region")
        regions.append(region != 0)
    return regions * pages if len(regions) == 1 else regions


def _read_stack_pair(stem: str, image_path: Path, mask_path: Path, label_path: Path | None,
                     channel: list[int] | None = None) -> list[Raw]:
    """One sample per page of an image stack and its mask (and label) stack; DataError for unequal stacks."""
    images, masks = read_stack(image_path, channel), read_stack(mask_path)
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
