"""Pascal VOC segmentation layout: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNGs read as
class indices 0..20), ids from ``ImageSets/Segmentation/<split>.txt`` (default split ``train``).

21 classes (background + 20). The value 255 (object boundaries / "difficult" regions) is kept as **255 = ignore**.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import DataError
from ..masks import IGNORE
from .base import LAYOUTS, Raw, Reader, Scan, read_image_and_mask

NUM_CLASSES = 21


def detect(root: Path) -> bool:
    """Whether ``root`` holds ``JPEGImages/`` and ``SegmentationClass/``."""
    return (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir()


@LAYOUTS.register("voc", priority=20, detect=detect, looks_for="JPEGImages/ + SegmentationClass/",
                  description="Pascal VOC segmentation (21 classes, 255 = ignore)")
def scan(root: Path, split: str | None = None) -> Scan:
    """One reader per id of ``ImageSets/Segmentation/<split>.txt`` (default ``train``); a missing image or mask
    is a problem.

    Raises:
        DataError: the split file is missing or lists no ids.
    """
    split = split or "train"
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise DataError(f"{list_file}: split file not found (expected one image id per line for split {split!r})")
    ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{list_file}: no image ids")
    result = Scan(num_classes=NUM_CLASSES)
    for i in ids:
        image_path = root / "JPEGImages" / f"{i}.jpg"
        mask_path = root / "SegmentationClass" / f"{i}.png"
        missing = [p for p in (image_path, mask_path) if not p.is_file()]
        if missing:
            result.problems += [f"{p}: file not found (id {i!r} listed in {list_file})" for p in missing]
            continue
        result.readers.append(_reader(i, image_path, mask_path))
    return result


def _reader(name: str, image_path: Path, mask_path: Path) -> Reader:
    """Read one image and its class-index PNG (final labels; DataError for values that are not VOC classes)."""
    def read() -> list[Raw]:
        image, mask = read_image_and_mask(image_path, mask_path, "a palette (or grey) PNG of class indices")
        values = np.unique(mask)
        bad = values[(values >= NUM_CLASSES) & (values != IGNORE)]
        if bad.size:
            raise DataError(f"{mask_path}: label values {bad[:8].tolist()} are not VOC classes "
                            f"(expected 0..{NUM_CLASSES - 1} or {IGNORE} = ignore)")
        return [Raw(name, image, mask.astype(np.uint8), image_path, mask_path, final=True)]
    return read
