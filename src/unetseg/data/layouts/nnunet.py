"""nnU-Net v2 raw dataset layout (2-D image formats only):

``dataset.json`` with ``channel_names`` (``{"0": "R", "1": "G"}``), ``labels`` (``{"background": 0, "x": 1}``)
and ``file_ending`` (``.png``, ``.tif``, ...); ``imagesTr/<case>_<k:04d><ending>`` one file per channel k (a file
holding several channels, e.g. an RGB PNG, contributes all of them), stacked into (H, W, C) in channel order;
``labelsTr/<case><ending>`` class indices. ``num_classes`` = largest label value + 1. An ``"ignore"`` label
(nnU-Net's partial annotation; it must be the largest value) is mapped to **255 = ignore** and not counted as a
class. Region-based labels (lists of values) are not supported. Volumes (``.nii.gz``, ``.nrrd``, ...) are not
supported.

Every channel is a real channel (registered with ``alpha=False``): ``SegmentationData.channels`` is the full count
(a 2- or 4-channel image is not taken as grey+alpha / RGBA here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io import IMAGE_SUFFIXES, DataError, read_image
from ..masks import IGNORE
from .base import LAYOUTS, Raw, Reader, Scan, check_size

REQUIRED_KEYS = ("channel_names", "labels", "file_ending")


def read_dataset_json(root: Path) -> tuple[list[int], dict[str, int], str]:
    """(channel indices, labels, file ending) from ``root/dataset.json``; DataError naming the file."""
    path = root / "dataset.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (nnU-Net layout)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the JSON ({err})") from err
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object with keys {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)} (expected {', '.join(REQUIRED_KEYS)})")
    try:
        channels = sorted(int(k) for k in meta["channel_names"])
    except (TypeError, ValueError):
        raise DataError(f"{path}: channel_names must map channel numbers (\"0\", \"1\", ...) to names") from None
    if not channels or channels != list(range(len(channels))):
        raise DataError(f"{path}: channel_names keys must be 0..C-1, got {list(meta['channel_names'])}")
    labels = meta["labels"]
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{path}: labels must map names to integer values, e.g. {{\"background\": 0, \"x\": 1}}")
    for name, value in labels.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DataError(f"{path}: label {name!r}: {value!r}; expected an integer >= 0 "
                            "(region-based labels are not supported)")
    ending = str(meta["file_ending"])
    if not ending.lower().endswith(IMAGE_SUFFIXES):
        raise DataError(f"{path}: file_ending {ending!r} is not a supported 2-D image format "
                        f"(expected one of {', '.join(IMAGE_SUFFIXES)})")
    return channels, labels, ending


def detect(root: Path) -> bool:
    """Whether ``root`` holds ``dataset.json``."""
    return (root / "dataset.json").is_file()


@LAYOUTS.register("nnunet", priority=10, detect=detect, looks_for="dataset.json", alpha=False,
                  description="nnU-Net v2 raw dataset (2-D image formats)")
def scan(root: Path) -> Scan:
    """One reader per case of ``imagesTr/``; a missing channel or label file, or a label without image, is a
    problem.

    Raises:
        DataError: an unreadable or incomplete ``dataset.json``, a missing ``imagesTr/`` or ``labelsTr/``, no cases.
    """
    channels, labels, ending = read_dataset_json(root)
    num_classes, ignore = _classes(root, labels)
    image_dir, label_dir = root / "imagesTr", root / "labelsTr"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"{d}: folder not found (nnU-Net layout: imagesTr/ and labelsTr/)")
    first = f"_0000{ending}"
    cases = sorted(p.name[: -len(first)] for p in image_dir.iterdir() if p.name.endswith(first))
    if not cases:
        raise DataError(f"{image_dir}: no <case>{first} files")
    result = Scan(num_classes=num_classes)
    label_cases = {p.name[: -len(ending)] for p in label_dir.iterdir() if p.name.endswith(ending)}
    result.problems += [f"{label_dir / (c + ending)} has no image {image_dir / (c + first)}"
                        for c in sorted(label_cases - set(cases))]
    for case in cases:
        files = [image_dir / f"{case}_{k:04d}{ending}" for k in channels]
        label = label_dir / f"{case}{ending}"
        missing = [f for f in [*files, label] if not f.is_file()]
        if missing:
            result.problems += [f"{f}: file not found (case {case!r}, {len(channels)} channel(s) in dataset.json)"
                                for f in missing]
            continue
        result.readers.append(_reader(case, files, label, num_classes, ignore))
    return result


def _classes(root: Path, labels: dict[str, int]) -> tuple[int, int | None]:
    """(number of classes, the "ignore" label value or None) of dataset.json's ``labels``.

    Raises:
        DataError: the ignore label is not the largest value, or fewer than 2 classes are declared.
    """
    ignore = labels.get("ignore")
    num_classes = max((v for k, v in labels.items() if k != "ignore"), default=0) + 1
    if ignore is not None and ignore != max(labels.values()):
        raise DataError(f"{root / 'dataset.json'}: the ignore label ({ignore}) must be the largest label value")
    if num_classes < 2:
        raise DataError(f"{root / 'dataset.json'}: labels {labels} declare fewer than 2 classes")
    return num_classes, ignore


def _reader(case: str, files: list[Path], label_path: Path, num_classes: int, ignore: int | None) -> Reader:
    """Read one case: its channel files stacked into (H, W, C) and its labels (final; "ignore" becomes 255)."""
    def read() -> list[Raw]:
        image = _read_channels(files)
        mask = read_image(label_path)
        if mask.ndim != 2:
            raise DataError(f"{label_path}: expected a single-channel label image, got shape {mask.shape}")
        check_size(image, mask, files[0], label_path, "label")
        values = np.unique(mask)
        allowed = set(range(num_classes)) | ({ignore} if ignore is not None else set())
        bad = [int(v) for v in values if int(v) not in allowed]
        if bad:
            raise DataError(f"{label_path}: label values {bad[:8]} are not in dataset.json labels "
                            f"(expected 0..{num_classes - 1}" + (f" or {ignore} = ignore)" if ignore else ")"))
        labels = mask.astype(np.int64)
        if ignore is not None:
            labels[labels == ignore] = IGNORE
        dtype = np.uint8 if num_classes <= 255 else np.int32
        return [Raw(case, image, labels.astype(dtype), files[0], label_path, final=True)]
    return read


def _read_channels(files: list[Path]) -> np.ndarray:
    """The channel files of one case stacked into (H, W, C), or (H, W) for one grey channel; DataError when the
    sizes differ."""
    parts: list[np.ndarray] = []
    for f in files:
        part = read_image(f)
        if parts:
            check_size(parts[0], part, files[0], f, "channel")
        parts.append(part if part.ndim == 3 else part[:, :, None])
    image = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
    return image[:, :, 0] if image.shape[2] == 1 else image
