"""Detecting a layout and loading a dataset in any registered layout.

Loading and inspecting share one path, :func:`collect_dataset`: the layout's scan lists every problem it finds
(unpaired or missing files), then every sample is read once, in a streaming pass that keeps only what it learns of
each (its :class:`~unetseg.data.stats.SampleFacts`, and the distinct mask values with their pixel counts, from
which the class count and each mask's conversion to class labels are checked), and every failure is collected as a
problem too. A dataset loaded with ``lazy=True`` keeps no pixel data: each sample reads itself again from its files
(:class:`LayoutSource`) when it is needed, so its memory does not grow with the number of images.
:func:`load_dataset` raises one :class:`DataError` listing the problems (the first 5 and a count);
:func:`scan_dataset` returns them with the readable samples. Errors in what was asked for (an unknown or
undetectable layout, a colour map for another layout, ``num_classes`` contradicting the layout) and errors that
leave nothing to read (a missing top folder, an unreadable ``dataset.json``) are raised at once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..channels import image_channels
from ..dataset import Sample, SegmentationData
from ..io import DataError, check_min_size, colour_mask_to_labels, load_colormap
from ..masks import IGNORE, check_values, detect_num_classes, mask_to_labels, missing_classes, single_channel
from ..stats import SampleFacts, value_counts
from .base import LAYOUTS, Raw, Reader, Scan, attempt, has_alpha, raise_problems

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
                 channel: list[int] | None = None, plane: int | None = None, lazy: bool = False) -> SegmentationData:
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
        lazy: keep no pixel data: every sample is checked as it is read, then read again from its files by
            :meth:`~unetseg.data.dataset.Sample.read` (its ``image`` and ``labels`` are None; ``facts`` says its
            size, channels and class pixels).

    Returns:
        The samples, the number of classes and of image channels, and the ignore value in use.

    Raises:
        DataError: one error listing every problem found (each naming the file and what was expected), or an
            error in the arguments (see the module docstring).
    """
    data, problems, _ = collect_dataset(root, layout, num_classes, instances, mask_suffix, split, ignore_index,
                                        colormap, training, truth=truth, annotated_regions=annotated_regions,
                                        channel=channel, plane=plane, lazy=lazy)
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


class ScanSpec:
    """A layout's scan of a dataset folder with its options, run again when needed (in a loader process that was
    spawned, whose copy arrives without the scan's readers)."""

    def __init__(self, root: Path, layout: str, options: dict[str, Any]) -> None:
        self.root, self.layout, self.options = root, layout, options
        self._readers: list[Reader] | None = None

    def scan(self) -> Scan:
        """Run the layout's scan (:func:`scan_layout`); its readers are kept for :meth:`reader`."""
        scan = scan_layout(self.root, self.layout, **self.options)
        self._readers = scan.readers
        return scan

    def reader(self, index: int) -> Reader:
        """The scan's reader number ``index``."""
        if self._readers is None:
            self.scan()
        assert self._readers is not None
        if index >= len(self._readers):
            raise DataError(f"{self.root}: the dataset changed since it was read (sample {index + 1} is gone); "
                            "start again")
        return self._readers[index]

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "layout": self.layout, "options": self.options, "_readers": None}


@dataclass
class LayoutSource:
    """Reads one sample of a lazily loaded dataset again: page ``page`` of the scan's reader ``reader``, its mask
    converted as the loading pass did (same classes, colours and ignore value)."""

    spec: ScanSpec
    reader: int
    page: int
    name: str
    num_classes: int
    colours: Colours | None
    ignore_index: int | None

    def read(self) -> Sample:
        """The sample, with its image, class labels and instance labels in memory.

        Raises:
            DataError: the files cannot be read any more, or no longer hold this sample.
        """
        raws = self.spec.reader(self.reader)()
        raw = raws[self.page] if self.page < len(raws) else None
        if raw is None or raw.name != self.name:
            raise DataError(f"{self.spec.root}: sample {self.name} changed since the dataset was read; start again")
        labels = _labels(raw, self.num_classes, self.colours, self.ignore_index)
        return Sample(raw.name, raw.image, labels, raw.image_path, raw.mask_path, raw.instances)


@dataclass(eq=False)
class _Seen:
    """One sample as the loading pass keeps it: where it comes from, its image's facts, and its mask's distinct
    values with their pixel counts (``inside``: inside its annotated region, when only part of it is annotated).
    ``converted``: the values are class labels already (a layout's final labels, or a colour mask converted).
    ``raw``: the sample as read, kept only for a dataset held in memory."""

    name: str
    image_path: Path
    mask_path: Path
    reader: int
    page: int
    shape: tuple[int, int]
    channels: int
    instances: bool
    min_size_problem: str | None
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    inside: np.ndarray | None = None
    outside: int = 0
    converted: bool = False
    raw: Raw | None = None


def collect_dataset(root: str | os.PathLike, layout: str = "auto", num_classes: int | None = None,
                    instances: bool = False, mask_suffix: str = "", split: str | None = None,
                    ignore_index: int | None = None, colormap: str | os.PathLike | None = None,
                    training: bool = True, truth: str | None = None, annotated_regions: bool = True,
                    channel: list[int] | None = None, plane: int | None = None, lazy: bool = False
                    ) -> tuple[SegmentationData | None, list[str], str]:
    """The one loading path of :func:`load_dataset` and :func:`scan_dataset` (same arguments and return value as
    :func:`scan_dataset`, and ``lazy`` as :func:`load_dataset`): scan, read every sample once, find the classes,
    check the masks' conversion to class labels, collecting every problem."""
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    num_classes, colours = _check_classes(layout, num_classes, colormap)
    spec = ScanSpec(root, layout, {"mask_suffix": mask_suffix, "split": split, "instances": instances,
                                   "truth": truth, "annotated_regions": annotated_regions, "channel": channel,
                                   "plane": plane})
    scan = spec.scan()
    num_classes = _layout_classes(root, layout, scan, num_classes)
    problems = list(scan.problems)
    seen, value_problems, read = _read_all(scan, colours, has_alpha(layout), keep=not lazy, problems=problems)
    if not read:
        problems.append(f"{root}: no samples found for the {layout} layout" if not problems
                        else f"{root}: no readable samples")
        return None, problems, layout
    problems += value_problems
    if num_classes is None:
        num_classes = _detect_classes(seen, ignore_index, problems)
    partial = any(s.outside for s in seen)
    samples = _to_samples(seen, spec, num_classes, colours, ignore_index, problems)
    if not samples:
        return None, problems, layout
    channels = max(s.facts.channels for s in samples if s.facts is not None)
    if scan.num_classes is not None and any(s.facts is not None and s.facts.class_pixels.get(IGNORE)
                                            for s in samples):
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


def _read_all(scan: Scan, colours: Colours | None, alpha: bool, keep: bool,
              problems: list[str]) -> tuple[list[_Seen], list[str], int]:
    """Read every sample of the scan once: (the samples whose masks give class values, the problems of the masks
    that do not, the number of samples read). Readers that fail add their error to ``problems``; the pixels are
    dropped after each sample unless ``keep``."""
    seen: list[_Seen] = []
    value_problems: list[str] = []
    read = 0
    for index, reader in enumerate(scan.readers):
        for page, raw in enumerate(attempt(problems, reader) or []):
            read += 1
            found = attempt(value_problems, _seen, raw, index, page, colours, alpha)
            if found is not None:
                found.raw = raw if keep else None
                seen.append(found)
    return seen, value_problems, read


def _seen(raw: Raw, reader: int, page: int, colours: Colours | None, alpha: bool) -> _Seen:
    """What the loading pass keeps of one sample (see :class:`_Seen`).

    Raises:
        DataError: a mask that is not one channel of whole numbers (without a colour map), or with a colour
            missing from the colour map.
    """
    if colours is not None:
        labels, converted = colour_mask_to_labels(raw.mask, colours, raw.mask_path), True
    elif raw.final:
        labels, converted = raw.mask, True
    else:
        labels, converted = single_channel(raw.mask, raw.mask_path), False
    values, counts = value_counts(labels)
    if not converted:
        check_values(values, raw.mask_path)
    inside, outside = None, 0
    if raw.annotated is not None and not raw.annotated.all():
        inside_values, inside_counts = value_counts(labels[raw.annotated])
        inside = np.zeros_like(counts)
        inside[np.searchsorted(values, inside_values)] = inside_counts
        outside = int(raw.annotated.size - raw.annotated.sum())
    problem: list[str] = []
    attempt(problem, check_min_size, raw.image, raw.image_path)
    shape = (int(raw.image.shape[0]), int(raw.image.shape[1]))
    return _Seen(raw.name, raw.image_path, raw.mask_path, reader, page, shape, image_channels(raw.image, alpha),
                 raw.instances is not None, problem[0] if problem else None, values, counts, inside, outside,
                 converted)


def _detect_classes(seen: list[_Seen], ignore_index: int | None, problems: list[str]) -> int:
    """The class count the masks' values imply. An ambiguous class count is appended to ``problems`` (the count
    then falls back to the largest value + 1), and so are mask values above a class that never occurs."""
    values: dict[str, np.ndarray] = {}
    for s in seen:
        key = str(s.mask_path)
        values[key] = np.union1d(values[key], s.values) if key in values else s.values
    num_classes = attempt(problems, detect_num_classes, values, ignore_index)
    if num_classes is None:
        return max(2, max((int(v.max()) for v in values.values() if v.size), default=1) + 1)
    union = np.unique(np.concatenate(list(values.values()))) if values else np.array([], int)
    union = union[union != ignore_index] if ignore_index is not None else union
    missing = missing_classes(union, ignore_index)
    if missing:
        problems.append(_stray_message(seen, union, missing, num_classes))
    return num_classes


def _stray_message(seen: list[_Seen], union: np.ndarray, missing: list[tuple[int, int]], num_classes: int) -> str:
    """The problem of mask values above a class that never occurs: each stray value (at most 3) with the masks
    holding it (at most 3) and its pixel count there, and what to do."""
    stray = [int(v) for v in union if v > missing[0][0]][:3]
    parts = []
    for value in stray:
        counts: dict[Path, int] = {}
        for s in seen:  # the pages of a stack share their file
            n = int(s.counts[s.values == value].sum())
            counts[s.mask_path] = counts.get(s.mask_path, 0) + n
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
    facts = [s.facts for s in samples if s.facts is not None]
    problems = list(dict.fromkeys(f.min_size_problem for f in facts if f.min_size_problem))  # a stack: one file
    if not any(f.has_foreground(ignore_index) for f in facts):
        ignored = f" or {ignore_index} (ignore)" if ignore_index is not None else ""
        problems.append(f"no mask of {root} has a foreground pixel (every pixel of its {len(samples)} mask(s) is "
                        f"0{ignored}): nothing to learn; check that the masks mark the objects with values above 0 "
                        "(e.g. 1 or 255) and that they belong to these images")
    return problems


def _to_samples(seen: list[_Seen], spec: ScanSpec, num_classes: int, colours: Colours | None,
                ignore_index: int | None, problems: list[str]) -> list[Sample]:
    """The samples whose masks convert to class labels (held in memory when the pass kept them, else lazy); the
    others' errors appended to ``problems``."""
    samples = []
    for s in seen:
        pixels = attempt(problems, _class_pixels, s, num_classes, ignore_index)
        if pixels is None:
            continue
        facts = SampleFacts(s.shape, s.channels, pixels, s.instances, s.min_size_problem)
        if s.raw is not None:
            labels = _labels(s.raw, num_classes, colours, ignore_index)
            samples.append(Sample(s.name, s.raw.image, labels, s.image_path, s.mask_path, s.raw.instances, facts))
        else:
            source = LayoutSource(spec, s.reader, s.page, s.name, num_classes, colours, ignore_index)
            samples.append(Sample(s.name, None, None, s.image_path, s.mask_path, None, facts, source))
    return samples


def _class_pixels(s: _Seen, num_classes: int, ignore_index: int | None) -> dict[int, int]:
    """The pixels of each class-label value of a sample once its mask is converted (as :func:`_labels` converts
    it), from its mask's distinct values alone.

    Raises:
        DataError: as :func:`_labels` would: values outside the classes, or an ignore value that is a class for a
            partly annotated sample.
    """
    classes = s.values if s.converted else mask_to_labels(s.values[None, :], num_classes, s.mask_path,
                                                          ignore_index)[0]
    pixels: dict[int, int] = {}
    for value, n in zip(classes.tolist(), (s.counts if s.inside is None else s.inside).tolist()):
        if n:
            pixels[int(value)] = pixels.get(int(value), 0) + int(n)
    if s.outside:
        value = ignore_index if ignore_index is not None else IGNORE
        _check_ignore_value(value, num_classes, s.mask_path)
        pixels[value] = pixels.get(value, 0) + s.outside
    return dict(sorted(pixels.items()))


def _check_ignore_value(value: int, num_classes: int, mask_path: Path) -> None:
    """DataError when ``value``, given to the pixels outside a sample's annotated region, is one of the classes."""
    if 0 <= value < num_classes:
        raise DataError(f"{mask_path}: the pixels outside its annotated region would get the ignore value "
                        f"{value}, which is one of the {num_classes} classes; pass --ignore-index with a value that "
                        "is not a class (e.g. 255 for fewer than 255 classes)")


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
    _check_ignore_value(value, num_classes, raw.mask_path)
    fits = labels.dtype.kind in "iu" and np.iinfo(labels.dtype).min <= value <= np.iinfo(labels.dtype).max
    return np.where(raw.annotated, labels, value).astype(labels.dtype if fits else np.int32)
