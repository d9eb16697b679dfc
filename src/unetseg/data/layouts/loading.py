"""Detecting a layout and loading a dataset in any registered layout.

Loading and inspecting share one path, :func:`collect_dataset`: the layout's scan lists every problem it finds
(unpaired or missing files), then every sample is read, its mask converted to class labels, and every failure is
collected as a problem too. :func:`load_dataset` raises one :class:`DataError` listing the problems (the first 5 and
a count); :func:`scan_dataset` returns them with the readable samples. Errors in what was asked for (an unknown or
undetectable layout, a colour map for another layout, ``num_classes`` contradicting the layout) and errors that
leave nothing to read (a missing top folder, an unreadable ``dataset.json``) are raised at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..channels import image_channels
from ..dataset import Sample, SegmentationData
from ..io import DataError, check_min_size, colour_mask_to_labels, load_colormap
from ..masks import IGNORE, detect_num_classes, mask_to_labels, mask_values, missing_classes, single_channel
from .base import LAYOUTS, Raw, Scan, attempt, has_alpha, raise_problems

logger = logging.getLogger(__name__)

Colours = dict[int, tuple[int, int, int]]


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of ``root`` from its contents, trying the layouts in priority order (logged).

    Raises:
        DataError: ``root`` is not a folder, or no layout matches (the message lists what was looked for).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    entries = sorted(LAYOUTS.entries(), key=lambda entry: entry.info["priority"])
    for entry in entries:
        if entry.info["detect"](root):
            logger.info("%s: detected the %s layout", root, entry.name)
            return entry.name
    for entry in entries:  # a folder that has part of a layout: say what is missing
        near = entry.info.get("near")
        if near is not None and (hint := near(root)):
            raise DataError(hint)
    looked = ", ".join(f"{entry.info['looks_for']} ({entry.name})" for entry in entries)
    raise DataError(f"{root}: cannot tell the dataset layout; looked for {looked}; arrange the folder as one of "
                    "these (see docs/data.md, Layouts)")


def scan_layout(root: Path, layout: str, mask_suffix: str = "", split: str | None = None,
                instances: bool = False, truth: str | None = None, annotated_regions: bool = True,
                channel: list[int] | None = None, plane: int | None = None) -> Scan:
    """Run the scan of ``layout`` (no pixel data read, except stacks' page counts), passing it the options it takes.

    Raises:
        DataError: an unknown layout, instance labels asked of a layout without them, or the scan's own errors.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; expected auto or one of {', '.join(LAYOUTS)}")
    if instances and not LAYOUTS.get(layout).info.get("instances", False):
        raise DataError(f"{root}: instance labels are not supported for the {layout} layout")
    takes = LAYOUTS.options(layout)
    given = {"mask_suffix": mask_suffix, "split": split, "instances": instances, "truth": truth,
             "annotated_regions": annotated_regions, "channel": channel, "plane": plane}
    return LAYOUTS.build(layout, root, **{key: value for key, value in given.items() if key in takes})


def load_dataset(root: str | os.PathLike, layout: str = "auto", num_classes: int | None = None,
                 instances: bool = False, mask_suffix: str = "", split: str | None = None,
                 ignore_index: int | None = None, colormap: str | os.PathLike | None = None,
                 training: bool = True, truth: str | None = None, annotated_regions: bool = True,
                 channel: list[int] | None = None, plane: int | None = None) -> SegmentationData:
    """Read and validate a dataset in any registered layout.

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
            ``SegmentationData.ignore_index`` tells which value applies.
        colormap: ``folder``: a colour map file (YAML/JSON, class index -> [R, G, B]) for RGB colour-coded masks;
            the number of classes is then the number of colours.
        training: also the checks that matter for training only: every image at least
            :data:`~unetseg.data.io.MIN_SIDE` pixels on each side, and a foreground pixel in some mask (evaluation
            data may hold only background, and small images, which prediction pads).
        truth: ``ctc``: which segmentation truth, ``gold``, ``silver`` or ``gold+silver`` (None: gold when the
            dataset has it, else silver).
        annotated_regions: mark the pixels known to be unannotated with the ignore value (255, or
            ``ignore_index``): ``folder``: outside the masks of ``regions/`` when that folder exists; ``ctc``: the
            cells that have a tracking marker but no gold label. False: those pixels keep the mask's value.

    Returns:
        The samples, the number of classes and of image channels, and the ignore value in use.

    Raises:
        DataError: one error listing every problem found (each naming the file and what was expected), or an
            error in the arguments (see the module docstring).
    """
    data, problems, _ = collect_dataset(root, layout, num_classes, instances, mask_suffix, split, ignore_index,
                                        colormap, training, truth=truth, annotated_regions=annotated_regions,
                                        channel=channel, plane=plane)
    raise_problems(problems)
    assert data is not None  # no samples always comes with a problem
    return data


def scan_dataset(root: str | os.PathLike, layout: str = "auto", num_classes: int | None = None,
                 instances: bool = False, mask_suffix: str = "", split: str | None = None,
                 ignore_index: int | None = None, colormap: str | os.PathLike | None = None,
                 training: bool = True, truth: str | None = None, annotated_regions: bool = True,
                 channel: list[int] | None = None, plane: int | None = None
                 ) -> tuple[SegmentationData | None, list[str], str]:
    """Like :func:`load_dataset` but returning the problems instead of raising them.

    Returns:
        (the dataset of the readable samples, or None when none is; the problems; the layout used).

    Raises:
        DataError: the errors that stop everything (see the module docstring).
    """
    return collect_dataset(root, layout, num_classes, instances, mask_suffix, split, ignore_index, colormap,
                           training, truth=truth, annotated_regions=annotated_regions, channel=channel, plane=plane)


def collect_dataset(root: str | os.PathLike, layout: str = "auto", num_classes: int | None = None,
                    instances: bool = False, mask_suffix: str = "", split: str | None = None,
                    ignore_index: int | None = None, colormap: str | os.PathLike | None = None,
                    training: bool = True, truth: str | None = None, annotated_regions: bool = True,
                    channel: list[int] | None = None, plane: int | None = None
                    ) -> tuple[SegmentationData | None, list[str], str]:
    """The one loading path of :func:`load_dataset` and :func:`scan_dataset` (same arguments and return value as
    :func:`scan_dataset`): scan, read, find the classes, convert the masks, collecting every problem."""
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    num_classes, colours = _check_classes(layout, num_classes, colormap)
    scan = scan_layout(root, layout, mask_suffix, split, instances, truth, annotated_regions, channel, plane)
    num_classes = _layout_classes(root, layout, scan, num_classes)
    problems = list(scan.problems)
    raws = _read(scan, problems)
    if not raws:
        problems.append(f"{root}: no samples found for the {layout} layout" if not problems
                        else f"{root}: no readable samples")
        return None, problems, layout
    if num_classes is None:
        raws, num_classes = _detect_classes(raws, ignore_index, problems)
    partial = any(raw.annotated is not None and not raw.annotated.all() for raw in raws)
    samples = _to_samples(raws, num_classes, colours, ignore_index, problems)
    if not samples:
        return None, problems, layout
    channels = max(image_channels(s.image, has_alpha(layout)) for s in samples)
    if scan.num_classes is not None and any((s.labels == IGNORE).any() for s in samples if s.labels.size):
        ignore_index = IGNORE  # the layout's own ignore value occurs
    if partial and ignore_index is None:
        ignore_index = IGNORE  # pixels outside the annotated regions
    if training:
        problems += _training_problems(root, samples, ignore_index)
    return SegmentationData(root, samples, num_classes, channels, ignore_index), problems, layout


def _check_classes(layout: str, num_classes: int | None,
                   colormap: str | os.PathLike | None) -> tuple[int | None, Colours | None]:
    """(num_classes, colours): the colour map's class count when one is given; DataError for a colour map with
    another layout, a class count contradicting the colour map, or fewer than 2 classes."""
    colours = load_colormap(colormap) if colormap is not None else None
    if colours is not None:
        if layout != "folder":
            raise DataError(f"{colormap}: colour maps apply to the folder layout, not {layout}")
        if num_classes is not None and num_classes != max(colours) + 1:
            raise DataError(f"{colormap}: defines classes 0..{max(colours)}, but num_classes={num_classes}")
        num_classes = max(colours) + 1
    if num_classes is not None and num_classes < 2:
        raise DataError(f"num_classes must be >= 2 (2 for binary masks), got {num_classes}")
    return num_classes, colours


def _layout_classes(root: Path, layout: str, scan: Scan, num_classes: int | None) -> int | None:
    """The layout's own class count when it has one (DataError when ``num_classes`` contradicts it), else
    ``num_classes``."""
    if scan.num_classes is None:
        return num_classes
    if num_classes is not None and num_classes != scan.num_classes:
        raise DataError(f"{root}: num_classes={num_classes} given, but the {layout} layout has "
                        f"{scan.num_classes} classes")
    return scan.num_classes


def _read(scan: Scan, problems: list[str]) -> list[Raw]:
    """Every sample the scan's readers can read; the others' errors appended to ``problems``."""
    raws: list[Raw] = []
    for reader in scan.readers:
        raws.extend(attempt(problems, reader) or [])
    return raws


def _detect_classes(raws: list[Raw], ignore_index: int | None, problems: list[str]) -> tuple[list[Raw], int]:
    """(the samples whose mask values can be read, the class count their values imply). Unreadable masks and an
    ambiguous class count are appended to ``problems`` (the count then falls back to the largest value + 1)."""
    values: dict[str, np.ndarray] = {}
    kept = []
    for raw in raws:
        found = attempt(problems, mask_values, raw.mask, raw.mask_path)
        if found is None:
            continue
        key = str(raw.mask_path)
        values[key] = np.union1d(values[key], found) if key in values else found
        kept.append(raw)
    num_classes = attempt(problems, detect_num_classes, values, ignore_index)
    if num_classes is None:
        num_classes = max(2, max((int(v.max()) for v in values.values() if v.size), default=1) + 1)
    else:
        union = np.unique(np.concatenate(list(values.values()))) if values else np.array([], int)
        union = union[union != ignore_index] if ignore_index is not None else union
        missing = missing_classes(union, ignore_index)
        if missing:
            problems.append(_stray_message(kept, union, missing, num_classes))
    return kept, num_classes


def _stray_message(raws: list[Raw], union: np.ndarray, missing: list[tuple[int, int]], num_classes: int) -> str:
    """The problem of mask values above a class that never occurs: each stray value (at most 3) with the masks
    holding it (at most 3) and its pixel count there, and what to do."""
    stray = [int(v) for v in union if v > missing[0][0]][:3]
    parts = []
    for value in stray:
        counts: dict[Path, int] = {}
        for raw in raws:  # the pages of a stack share their file
            n = int((single_channel(raw.mask, raw.mask_path) == value).sum())
            counts[raw.mask_path] = counts.get(raw.mask_path, 0) + n
        where = [(path, n) for path, n in counts.items() if n]
        shown = ", ".join(f"{path} ({n} pixel{'s' if n != 1 else ''})" for path, n in where[:3])
        parts.append(f"mask value {value} in {shown}" + (f" and {len(where) - 3} more masks" if len(where) > 3 else ""))
    return (f"{'; '.join(parts)}: class(es) {_ranges(missing)} never occur, so the masks would make a "
            f"{num_classes}-class model; fix the masks, or pass --num-classes {num_classes} if {num_classes} "
            "classes are meant")


def _ranges(runs: list[tuple[int, int]]) -> str:
    """Runs of integers as text: ``[(2, 4), (7, 7)]`` -> ``"2..4, 7"`` (the first 10 runs)."""
    text = ", ".join(f"{a}..{b}" if b > a else f"{a}" for a, b in runs[:10])
    return text + (", ..." if len(runs) > 10 else "")


def _training_problems(root: Path, samples: list[Sample], ignore_index: int | None) -> list[str]:
    """What stops training on the samples: images too small to segment (once per file), and no foreground pixel in
    any mask (``ignore_index`` is not foreground; single empty masks are fine)."""
    problems: list[str] = []
    for s in samples:
        attempt(problems, check_min_size, s.image, s.image_path)
    problems = list(dict.fromkeys(problems))  # the pages of a stack share their file
    if not any(_has_foreground(s.labels, ignore_index) for s in samples):
        ignored = f" or {ignore_index} (ignore)" if ignore_index is not None else ""
        problems.append(f"no mask of {root} has a foreground pixel (every pixel of its {len(samples)} mask(s) is "
                        f"0{ignored}): nothing to learn; check that the masks mark the objects with values above 0 "
                        "(e.g. 1 or 255) and that they belong to these images")
    return problems


def _has_foreground(labels: np.ndarray, ignore_index: int | None) -> bool:
    """Whether ``labels`` has a pixel of a class other than background (0), the ignore value left out."""
    foreground = labels > 0
    if ignore_index is not None:
        foreground &= labels != ignore_index
    return bool(foreground.any())


def _to_samples(raws: list[Raw], num_classes: int, colours: Colours | None, ignore_index: int | None,
                problems: list[str]) -> list[Sample]:
    """The samples whose masks convert to class labels; the others' errors appended to ``problems``."""
    samples = []
    for raw in raws:
        labels = attempt(problems, _labels, raw, num_classes, colours, ignore_index)
        if labels is not None:
            samples.append(Sample(raw.name, raw.image, labels, raw.image_path, raw.mask_path, raw.instances))
    return samples


def _labels(raw: Raw, num_classes: int, colours: Colours | None, ignore_index: int | None) -> np.ndarray:
    """The class labels of one sample: from its colour mask, its raw mask, or as the layout finished them; pixels
    outside its annotated region (if it has one) get the ignore value."""
    if colours is not None:
        labels = colour_mask_to_labels(raw.mask, colours, raw.mask_path)
    elif raw.final:
        labels = raw.mask
    else:
        labels = mask_to_labels(raw.mask, num_classes, raw.mask_path, ignore_index)
    if raw.annotated is None or raw.annotated.all():
        return labels
    value = ignore_index if ignore_index is not None else IGNORE
    if 0 <= value < num_classes:
        raise DataError(f"{raw.mask_path}: the pixels outside its annotated region would get the ignore value "
                        f"{value}, which is one of the {num_classes} classes; pass --ignore-index with a value that "
                        "is not a class (e.g. 255 for fewer than 255 classes)")
    fits = labels.dtype.kind in "iu" and np.iinfo(labels.dtype).min <= value <= np.iinfo(labels.dtype).max
    return np.where(raw.annotated, labels, value).astype(labels.dtype if fits else np.int32)
