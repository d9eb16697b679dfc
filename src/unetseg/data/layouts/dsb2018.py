"""Kaggle Data Science Bowl 2018 layout: ``DATA/<id>/images/<id>.png`` + ``DATA/<id>/masks/*.png``.

Each file in ``masks/`` is one object (non-zero pixels = the object). The objects are merged into an instance label
image (uint16 ids 1..N in file-name order of the mask files) and a binary semantic mask (1 = any object, 2 classes).
Overlapping objects are an error naming both mask files (the 2018 release has none). A mask file with no
foreground pixels is skipped with a logged warning (it gets no id). Instance labels are always returned.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..io import DataError, list_images, read_image
from ..masks import single_channel
from .base import LAYOUTS, Raw, Reader, Scan

logger = logging.getLogger(__name__)


def detect(root: Path) -> bool:
    """Whether every (visible) subfolder of ``root`` holds ``images/`` and ``masks/``, and there is one."""
    subs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return bool(subs) and all((d / "images").is_dir() and (d / "masks").is_dir() for d in subs)


@LAYOUTS.register("dsb2018", priority=50, detect=detect, looks_for="subfolders each with images/ and masks/",
                  instances=True, description="Data Science Bowl 2018: <id>/images/<id>.png + <id>/masks/*.png")
def scan(root: Path) -> Scan:
    """One reader per sample folder; a folder without ``images/`` (holding one image) or ``masks/`` is a problem.

    Raises:
        DataError: ``root`` has no sample folders.
    """
    result = Scan(num_classes=2)
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subs:
        raise DataError(f"{root}: no sample folders (expected <id>/images/<id>.png and <id>/masks/*.png)")
    for sub in subs:
        if not (sub / "images").is_dir():
            result.problems.append(f"{sub}: expected a folder {sub / 'images'} holding {sub.name}.png")
            continue
        if not (sub / "masks").is_dir():
            result.problems.append(f"{sub}: expected a folder {sub / 'masks'} with one mask file per object")
            continue
        images = list_images(sub / "images")
        if len(images) != 1:
            result.problems.append(f"{sub / 'images'}: expected exactly one image file, found {len(images)}"
                                   + (f" ({', '.join(p.name for p in images[:5])})" if images else ""))
            continue
        result.readers.append(_reader(sub.name, images[0], sub / "masks"))
    return result


def _reader(name: str, image_path: Path, mask_dir: Path) -> Reader:
    """Read the image and merge its object masks (the labels are final: 1 = any object)."""
    def read() -> list[Raw]:
        image = read_image(image_path)
        instances = merge_object_masks(list_images(mask_dir), image.shape[:2], mask_dir)
        return [Raw(name, image, (instances > 0).astype(np.uint8), image_path, mask_dir, instances, final=True)]
    return read


def merge_object_masks(files: list[Path], shape: tuple[int, ...], folder: Path) -> np.ndarray:
    """Merge one-object mask files into uint16 instance labels (ids 1..N in the order of ``files``).

    Raises:
        DataError: a mask of another size, or two objects overlapping (both files named).
    """
    instances = np.zeros(shape[:2], np.uint16)
    owner: dict[int, Path] = {}
    next_id = 1
    for path in files:
        mask = single_channel(read_image(path), path) > 0
        if mask.shape != instances.shape:
            raise DataError(f"{path}: object mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                            f"({shape[1]}x{shape[0]}, width x height)")
        if not mask.any():
            logger.warning("%s: empty object mask, skipped", path)
            continue
        clash = instances[mask]
        if clash.any():
            other = owner[int(clash[clash > 0][0])]
            raise DataError(f"{path}: object overlaps the object of {other} ({int((clash > 0).sum())} pixels); "
                            "expected non-overlapping object masks")
        if next_id > np.iinfo(np.uint16).max:
            raise DataError(f"{folder}: more than 65535 objects")
        instances[mask] = next_id
        owner[next_id] = path
        next_id += 1
    return instances
