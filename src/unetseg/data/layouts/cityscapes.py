"""Cityscapes layout: ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
``gtFine/<split>/<city>/<name>_gtFine_labelIds.png`` (default split ``train``).

The 34 label ids (0..33) are mapped to the 19 training classes with the official id -> trainId table below;
everything else becomes **255 = ignore**. A label value of 255 in the file is taken as ignore too; other values
above 33 are an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import DataError
from ..masks import IGNORE
from .base import LAYOUTS, Raw, Reader, Scan, read_image_and_mask

NUM_CLASSES = 19

# label id -> (name, trainId), from the Cityscapes label definition (cityscapesscripts/helpers/labels.py).
LABELS: dict[int, tuple[str, int]] = {
    0: ("unlabeled", IGNORE),
    1: ("ego vehicle", IGNORE),
    2: ("rectification border", IGNORE),
    3: ("out of roi", IGNORE),
    4: ("static", IGNORE),
    5: ("dynamic", IGNORE),
    6: ("ground", IGNORE),
    7: ("road", 0),
    8: ("sidewalk", 1),
    9: ("parking", IGNORE),
    10: ("rail track", IGNORE),
    11: ("building", 2),
    12: ("wall", 3),
    13: ("fence", 4),
    14: ("guard rail", IGNORE),
    15: ("bridge", IGNORE),
    16: ("tunnel", IGNORE),
    17: ("pole", 5),
    18: ("polegroup", IGNORE),
    19: ("traffic light", 6),
    20: ("traffic sign", 7),
    21: ("vegetation", 8),
    22: ("terrain", 9),
    23: ("sky", 10),
    24: ("person", 11),
    25: ("rider", 12),
    26: ("car", 13),
    27: ("truck", 14),
    28: ("bus", 15),
    29: ("caravan", IGNORE),
    30: ("trailer", IGNORE),
    31: ("train", 16),
    32: ("motorcycle", 17),
    33: ("bicycle", 18),
}

TRAIN_ID_LUT = np.full(256, IGNORE, np.uint8)
for _id, (_name, _train) in LABELS.items():
    TRAIN_ID_LUT[_id] = _train
CLASS_NAMES = [name for _, (name, t) in sorted(LABELS.items(), key=lambda kv: kv[1][1]) if t != IGNORE]

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def to_train_ids(label_ids: np.ndarray, path: Path | str = "<array>") -> np.ndarray:
    """Map label ids (H, W) to train ids 0..18 / 255; DataError for values 34..254."""
    values = np.unique(label_ids)
    bad = values[((values < 0) | (values > 33)) & (values != IGNORE)]
    if bad.size:
        raise DataError(f"{path}: label ids {bad[:8].tolist()} are not Cityscapes ids (expected 0..33)")
    return TRAIN_ID_LUT[label_ids.astype(np.int64)]


def detect(root: Path) -> bool:
    """Whether ``root`` holds ``leftImg8bit/`` and ``gtFine/``."""
    return (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()


@LAYOUTS.register("cityscapes", priority=30, detect=detect, looks_for="leftImg8bit/ + gtFine/",
                  description="Cityscapes gtFine label ids mapped to the 19 training classes (255 = ignore)")
def scan(root: Path, split: str | None = None) -> Scan:
    """Pair ``leftImg8bit/<split>/<city>/*`` images with their ``gtFine`` label ids (default split ``train``); an
    unpaired file is a problem.

    Raises:
        DataError: a missing split folder, or no images.
    """
    split = split or "train"
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"{d}: folder not found (expected <city>/ folders for split {split!r})")
    result = Scan(num_classes=NUM_CLASSES)
    images = {p.relative_to(image_dir).as_posix()[: -len(IMAGE_SUFFIX)]: p
              for p in sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))}
    labels = {p.relative_to(label_dir).as_posix()[: -len(LABEL_SUFFIX)]: p
              for p in sorted(label_dir.glob(f"*/*{LABEL_SUFFIX}"))}
    if not images:
        raise DataError(f"{image_dir}: no <city>/<name>{IMAGE_SUFFIX} files")
    result.problems += [f"{images[k]} has no label file {label_dir / (k + LABEL_SUFFIX)}"
                        for k in sorted(set(images) - set(labels))]
    result.problems += [f"{labels[k]} has no image {image_dir / (k + IMAGE_SUFFIX)}"
                        for k in sorted(set(labels) - set(images))]
    for key in sorted(set(images) & set(labels)):
        result.readers.append(_reader(key.split("/")[-1], images[key], labels[key]))
    return result


def _reader(name: str, image_path: Path, mask_path: Path) -> Reader:
    """Read one image and its label ids, mapped to train ids (final labels)."""
    def read() -> list[Raw]:
        image, ids = read_image_and_mask(image_path, mask_path, "a single-channel labelIds image")
        return [Raw(name, image, to_train_ids(ids, mask_path), image_path, mask_path, final=True)]
    return read
