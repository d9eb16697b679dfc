"""Pascal VOC segmentation layout: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNGs read as
class indices 0..20), ids from ``ImageSets/Segmentation/<split>.txt`` (default split ``train``).

21 classes (background + 20). The value 255 (object boundaries / "difficult" regions) is kept as **255 = ignore**.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import DataError, read_image

NUM_CLASSES = 21
IGNORE = 255


def scan(root: Path, split: str | None = None, mask_suffix: str = ""):
    from . import Scan

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


def _reader(name: str, image_path: Path, mask_path: Path):
    def read():
        from . import Raw, check_size

        image, mask = read_image(image_path), read_image(mask_path)
        if mask.ndim != 2:
            raise DataError(f"{mask_path}: expected a palette (or grey) PNG of class indices, got shape {mask.shape}")
        check_size(image, mask, image_path, mask_path)
        values = np.unique(mask)
        bad = values[(values >= NUM_CLASSES) & (values != IGNORE)]
        if bad.size:
            raise DataError(f"{mask_path}: label values {bad[:8].tolist()} are not VOC classes "
                            f"(expected 0..{NUM_CLASSES - 1} or {IGNORE} = ignore)")
        return [Raw(name, image, mask.astype(np.uint8), image_path, mask_path, final=True)]
    return read
