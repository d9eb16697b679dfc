"""Dataset layouts: detection, dispatch and the shared finishing step.

Layouts (``load_dataset(root, layout=...)``):

``folder``
    ``DATA/images/<stem>.*`` + ``DATA/masks/<stem><mask_suffix>.*`` (+ ``DATA/labels/<stem>.*`` instance labels with
    ``instances=True``). A multi-page TIFF in ``images/`` whose mask (same stem) is also a multi-page TIFF is a
    *stack* (e.g. ISBI 2012 ``train-volume.tif`` + ``train-labels.tif``): it is expanded into one sample per page,
    named ``<stem>_<page:03d>`` (page from 0). Image and mask stacks must have the same number of pages.
``dsb2018``
    Kaggle Data Science Bowl 2018: ``DATA/<id>/images/<id>.png`` + ``DATA/<id>/masks/*.png``, see
    :mod:`.layout_kaggle`.
``nnunet``
    nnU-Net v2 raw dataset (2-D image formats), see :mod:`.layout_nnunet`.
``voc``
    Pascal VOC segmentation, see :mod:`.layout_voc`.
``cityscapes``
    Cityscapes ``gtFine`` label ids mapped to the 19 training classes, see :mod:`.layout_cityscapes`.

Ignore value: the ``voc`` and ``cityscapes`` layouts (and ``nnunet`` datasets with an ``"ignore"`` label) return
labels with the value **255 = ignore** (void/boundary pixels, not a class); ``FolderData.num_classes`` counts the real
classes only (21 for VOC, 19 for Cityscapes).

Errors: every layout first *scans* its files and collects every problem it finds (unpaired files, missing files,
missing dataset.json keys, ...). :func:`load_dataset` raises one :class:`DataError` listing them (the first 5 and a
count); :func:`scan_dataset` (used by ``unetseg inspect``) returns them instead, and reads every file, collecting
per-sample read errors as problems too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..folder import FolderData, Sample, files_by_stem, image_channels, read_instances
from ..io import DataError, colour_mask_to_labels, load_colormap, read_image, read_stack, tiff_pages
from ..masks import detect_num_classes, mask_to_labels, mask_values

logger = logging.getLogger(__name__)

LAYOUTS = ("folder", "dsb2018", "nnunet", "voc", "cityscapes")
IGNORE = 255

Reader = Callable[[], "list[Raw]"]


@dataclass(eq=False)
class Raw:
    """One sample as read: ``mask`` is the raw mask (``final`` False) or the finished class labels (``final`` True)."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    image_path: Path
    mask_path: Path
    instances: np.ndarray | None = None
    final: bool = False


@dataclass
class Scan:
    """What a layout found: one reader per sample (or stack), the layout's fixed class count, and problems."""

    readers: list[Reader] = field(default_factory=list)
    num_classes: int | None = None
    problems: list[str] = field(default_factory=list)
    alpha: bool = True  # a 2nd/4th channel is alpha (False: nnU-Net, every channel is real)


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of ``root`` from its contents (logged); DataError listing what was looked for."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if (root / "dataset.json").is_file():
        layout = "nnunet"
    elif (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        layout = "voc"
    elif (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        layout = "cityscapes"
    elif (root / "images").is_dir() and (root / "masks").is_dir():
        layout = "folder"
    else:
        subs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if subs and all((d / "images").is_dir() and (d / "masks").is_dir() for d in subs):
            layout = "dsb2018"
        else:
            raise DataError(
                f"{root}: cannot tell the dataset layout; looked for dataset.json (nnunet), JPEGImages/ + "
                "SegmentationClass/ (voc), leftImg8bit/ + gtFine/ (cityscapes), images/ + masks/ (folder), "
                "subfolders each with images/ and masks/ (dsb2018)"
            )
    logger.info("%s: detected the %s layout", root, layout)
    return layout


def scan_layout(root: Path, layout: str, mask_suffix: str = "", split: str | None = None,
                instances: bool = False) -> Scan:
    """Run the layout's scan (no pixel data read, except stacks' page counts)."""
    if layout == "folder":
        return scan_folder(root, mask_suffix, instances)
    if layout == "dsb2018":
        from .dsb2018 import scan
    elif layout == "nnunet":
        from .nnunet import scan
    elif layout == "voc":
        from .voc import scan
    elif layout == "cityscapes":
        from .cityscapes import scan
    else:
        raise DataError(f"unknown layout {layout!r}; expected auto or one of {', '.join(LAYOUTS)}")
    if instances and layout != "dsb2018":
        raise DataError(f"{root}: instance labels are not supported for the {layout} layout")
    return scan(root, split=split, mask_suffix=mask_suffix)


def load_dataset(root: str | os.PathLike, layout: str = "auto", num_classes: int | None = None,
                 instances: bool = False, mask_suffix: str = "", split: str | None = None,
                 ignore_index: int | None = None, colormap: str | os.PathLike | None = None) -> FolderData:
    """Read and validate a dataset in any supported layout (see the module docstring).

    Args:
        root: the dataset folder.
        layout: ``auto`` (detect, logged) or one of :data:`LAYOUTS`.
        num_classes: classes incl. background; None: from the layout (nnunet/voc/cityscapes/dsb2018) or detected
            from the mask values (folder). A value that contradicts the layout's own is an error.
        instances: also return instance labels (``folder``: read ``labels/``; ``dsb2018``: always built).
        mask_suffix: ``folder`` only: ``masks/<stem><mask_suffix>.*`` pairs ``images/<stem>.*``.
        split: ``voc`` (default ``train``, from ``ImageSets/Segmentation/<split>.txt``) and ``cityscapes`` (default
            ``train``).
        ignore_index: ``folder``/``dsb2018``: a mask value meaning "not annotated", kept in the labels. The
            layouts with an ignore value of their own (voc, cityscapes, nnunet "ignore") use 255.
            ``FolderData.ignore_index`` tells which value applies.
        colormap: ``folder``: a colour map file (YAML/JSON, class index -> [R, G, B]) for RGB colour-coded masks;
            the number of classes is then the number of colours.

    Raises:
        DataError: naming the file or folder and what was expected.
    """
    data, problems, _ = _load(Path(root), layout, num_classes, instances, mask_suffix, split, collect=False,
                              ignore_index=ignore_index, colormap=colormap)
    assert data is not None and not problems
    return data


def scan_dataset(root: str | os.PathLike, layout: str = "auto", num_classes: int | None = None,
                 instances: bool = False, mask_suffix: str = "", split: str | None = None,
                 ignore_index: int | None = None) -> tuple[FolderData | None, list[str], str]:
    """Like :func:`load_dataset` but collecting problems: returns (data of the readable samples or None, problems,
    layout). Errors that stop everything (unknown layout, unreadable dataset.json, missing top folders) are still
    raised."""
    return _load(Path(root), layout, num_classes, instances, mask_suffix, split, collect=True,
                 ignore_index=ignore_index)


def raise_problems(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError("; ".join(problems[:5]) + more)


def _load(root: Path, layout: str, num_classes: int | None, instances: bool, mask_suffix: str,
          split: str | None, collect: bool, ignore_index: int | None = None,
          colormap: str | os.PathLike | None = None) -> tuple[FolderData | None, list[str], str]:
    if layout == "auto":
        layout = detect_layout(root)
    colours = load_colormap(colormap) if colormap is not None else None
    if colours is not None:
        if layout != "folder":
            raise DataError(f"{colormap}: colour maps apply to the folder layout, not {layout}")
        if num_classes is not None and num_classes != max(colours) + 1:
            raise DataError(f"{colormap}: defines classes 0..{max(colours)}, but num_classes={num_classes}")
        num_classes = max(colours) + 1
    if num_classes is not None and num_classes < 2:
        raise DataError(f"num_classes must be >= 2 (2 for binary masks), got {num_classes}")
    scan = scan_layout(root, layout, mask_suffix, split, instances)
    problems = list(scan.problems)
    if not collect:
        raise_problems(problems)
    raws: list[Raw] = []
    for reader in scan.readers:
        try:
            raws.extend(reader())
        except DataError as err:
            if not collect:
                raise
            problems.append(str(err))
    if not raws:
        if collect:
            return None, problems + [f"{root}: no readable samples"], layout
        raise DataError(f"{root}: no samples found for the {layout} layout")
    if scan.num_classes is not None:
        if num_classes is not None and num_classes != scan.num_classes:
            raise DataError(f"{root}: num_classes={num_classes} given, but the {layout} layout has "
                            f"{scan.num_classes} classes")
        num_classes = scan.num_classes
    elif num_classes is None:
        values, kept = {}, []
        for r in raws:
            try:
                v = mask_values(r.mask, r.mask_path)
            except DataError as err:
                if not collect:
                    raise
                problems.append(str(err))
                continue
            key = str(r.mask_path)
            values[key] = np.union1d(values[key], v) if key in values else v
            kept.append(r)
        raws = kept
        try:
            num_classes = detect_num_classes(values, ignore_index)
        except DataError as err:
            if not collect:
                raise
            problems.append(str(err))
            num_classes = max(2, max((int(v.max()) for v in values.values() if v.size), default=1) + 1)
    samples = []
    for r in raws:
        try:
            if colours is not None:
                labels = colour_mask_to_labels(r.mask, colours, r.mask_path)
            else:
                labels = r.mask if r.final else mask_to_labels(r.mask, num_classes, r.mask_path, ignore_index)
        except DataError as err:
            if not collect:
                raise
            problems.append(str(err))
            continue
        samples.append(Sample(r.name, r.image, labels, r.image_path, r.mask_path, r.instances))
    if not samples:
        return None, problems, layout
    if scan.alpha:
        channels = max(image_channels(s.image) for s in samples)
    else:
        channels = max(1 if s.image.ndim == 2 else s.image.shape[2] for s in samples)
    if scan.num_classes is not None and any((s.labels == IGNORE).any() for s in samples if s.labels.size):
        ignore_index = IGNORE  # the layout's own ignore value occurs
    return FolderData(root, samples, num_classes, channels, ignore_index), problems, layout


def check_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path, what: str = "mask") -> None:
    """DataError naming ``mask_path`` when the mask's (H, W) differs from the image's."""
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{mask_path}: {what} size {mask.shape[1]}x{mask.shape[0]} differs from its image {image_path} "
            f"({image.shape[1]}x{image.shape[0]}, width x height)"
        )


# ---------------------------------------------------------------------------------------------- folder layout

def pair_folder(root: Path, mask_suffix: str = "") -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair ``root/images/<stem>.*`` with ``root/masks/<stem><mask_suffix>.*``; returns (pairs, problems), every
    unpaired file and duplicate stem listed in ``problems``. Missing folders or no images raise DataError."""
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise DataError(f"{root}: expected a folder {root / sub} (layout: DATA/images/* and DATA/masks/*)")
    problems: list[str] = []
    images = _by_stem(root / "images", "", problems)
    masks = _by_stem(root / "masks", mask_suffix, problems)
    if not images:
        raise DataError(f"{root / 'images'}: no image files (expected .png, .jpg, .tif, ...)")
    expect = f"<stem>{mask_suffix}.*" if mask_suffix else "<stem>.*"
    problems += [f"{images[s]} has no mask in {root / 'masks'} (expected {expect})"
                 for s in sorted(set(images) - set(masks))]
    problems += [f"{masks[s]} has no image in {root / 'images'}" for s in sorted(set(masks) - set(images))]
    return [(s, images[s], masks[s]) for s in sorted(set(images) & set(masks))], problems


def _by_stem(folder: Path, suffix: str, problems: list[str]) -> dict[str, Path]:
    from ..io import list_images

    files: dict[str, Path] = {}
    for path in list_images(folder):
        stem = path.stem
        if suffix:
            if not stem.endswith(suffix):
                problems.append(f"{path}: mask name does not end with the mask suffix {suffix!r}")
                continue
            stem = stem[: -len(suffix)]
        if stem in files:
            problems.append(f"{path}: two files share the stem {stem!r} (the other is {files[stem].name})")
            continue
        files[stem] = path
    return files


def scan_folder(root: Path, mask_suffix: str = "", instances: bool = False) -> Scan:
    pairs, problems = pair_folder(root, mask_suffix)
    label_files: dict[str, Path] = {}
    if instances:
        if not (root / "labels").is_dir():
            raise DataError(f"{root}: expected a folder {root / 'labels'} with instance label images "
                            "(one per image, same stem)")
        label_files = files_by_stem(root / "labels")
        problems += [f"{root / 'labels'}: no instance label image for {ip}" for s, ip, _ in pairs
                     if s not in label_files]
    scan = Scan(problems=problems)
    for stem, image_path, mask_path in pairs:
        if instances and stem not in label_files:
            continue
        scan.readers.append(_folder_reader(stem, image_path, mask_path, label_files.get(stem)))
    return scan


def _folder_reader(stem: str, image_path: Path, mask_path: Path, label_path: Path | None) -> Reader:
    def read() -> list[Raw]:
        if tiff_pages(mask_path) > 1:
            return _read_stack_pair(stem, image_path, mask_path, label_path)
        image, mask = read_image(image_path), read_image(mask_path)
        check_size(image, mask, image_path, mask_path)
        inst = read_instances(label_path, mask.shape[:2]) if label_path else None
        return [Raw(stem, image, mask, image_path, mask_path, inst)]
    return read


def _read_stack_pair(stem: str, image_path: Path, mask_path: Path, label_path: Path | None) -> list[Raw]:
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
