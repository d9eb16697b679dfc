"""The Cell Tracking Challenge layout (2-D datasets), read as the challenge releases it::

    DATA/
      01/          t000.tif t001.tif ...                raw frames (any TIFF the challenge writes, LZW included)
      01_GT/SEG/   man_seg012.tif man_seg013.tif ...    gold truth: instance labels (0 = background), often partial
      01_GT/TRA/   man_track000.tif ...                 tracking markers: one blob per cell, for every cell
      01_ST/SEG/   man_seg000.tif ...                   silver truth: complete, computer-generated
      02/ 02_GT/ 02_ST/                                 further sequences

``DATA`` may also be one sequence folder (``DATA/02``: that sequence only) or one truth folder (``DATA/02_GT`` for
its gold, ``DATA/02_ST`` for its silver truth). ``split`` chooses sequences (``01``, or ``01,02``; default: all).

Which truth (``truth``):

``gold``
    the default when the chosen sequences have gold frames; the samples are the frames with a gold segmentation.
``silver``
    the samples are the frames with a silver segmentation, taken as complete.
``gold+silver``
    the frames with either: gold objects where gold has them, and every silver object that gold does not cover
    (more than half of its pixels outside gold objects) added on the pixels gold leaves free.

Partial annotation (``annotated_regions``, default on): in most gold frames only some cells carry a label; the
others are there but unlabelled. A cell is *unannotated* when its tracking marker has no pixel on a truth object.
Its region is the silver object under the marker (the one holding most marker pixels) or, without one, its region
of a watershed of the smoothed image seeded by all markers within a foreground estimate (pixels brighter than the
midpoint between the image median and Otsu's threshold: bright cells on a dark background, as in fluorescence).
The region, widened by :data:`MARGIN` pixels and never over a truth object, gets the ignore value (255) in the
class labels, so it is left out of the loss and the metrics. Without markers, the silver objects that gold does
not cover are the unannotated cells; without markers and silver, gold is taken as complete. ``silver`` truth is
taken as complete. With ``annotated_regions=False`` unannotated cells are background, as the files say.

Samples are named ``<sequence>/t<frame>`` (``01/t012``); class labels: 0 background, 1 cell, 255 ignore; instance
labels: the truth's objects (always returned).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import DataError, read_image, read_instances
from ..masks import IGNORE
from .base import LAYOUTS, Raw, Reader, Scan

logger = logging.getLogger(__name__)

#: the truths a CTC dataset can be read with
TRUTHS = ("gold", "silver", "gold+silver")
#: pixels by which the region of an unannotated cell is widened before it is ignored
MARGIN = 3

_SEQUENCE = re.compile(r"\d{2,}")
_FRAME = re.compile(r"t(\d+)\.tiff?")
_SEG = re.compile(r"man_seg(\d+)\.tiff?")
_TRA = re.compile(r"man_track(\d+)\.tiff?")


@dataclass(frozen=True)
class Where:
    """What a folder is within a CTC dataset: the dataset folder, its sequences, and the truth a truth folder
    (``NN_GT``: gold, ``NN_ST``: silver) implies."""

    root: Path
    sequences: tuple[str, ...]
    implied: str | None = None


def _has_truth(root: Path, seq: str) -> bool:
    return (root / f"{seq}_GT").is_dir() or (root / f"{seq}_ST").is_dir()


def locate(path: Path) -> Where | None:
    """Where ``path`` lies in a CTC dataset (a dataset, sequence or truth folder), or None when it is none."""
    path = Path(path)
    if not path.is_dir():
        return None
    name, parent = path.name, path.parent
    if _SEQUENCE.fullmatch(name) and _has_truth(parent, name):
        return Where(parent, (name,))
    truth = re.fullmatch(r"(\d{2,})_(GT|ST)", name)
    if truth and (parent / truth.group(1)).is_dir():
        return Where(parent, (truth.group(1),), "gold" if truth.group(2) == "GT" else "silver")
    seqs = tuple(sorted(d.name for d in path.iterdir() if _SEQUENCE.fullmatch(d.name) and d.is_dir()
                        and _has_truth(path, d.name)))
    return Where(path, seqs) if seqs else None


def detect(root: Path) -> bool:
    """Whether ``root`` is a CTC dataset folder (``NN/`` beside ``NN_GT/`` or ``NN_ST/``), sequence or truth
    folder."""
    return locate(root) is not None


def near(root: Path) -> str | None:
    """The message for a folder of CTC sequences (``NN/t*.tif``) without any truth folder beside them."""
    seqs = [d for d in root.iterdir() if _SEQUENCE.fullmatch(d.name) and d.is_dir() and any(d.glob("t*.tif*"))]
    if not seqs:
        return None
    return (f"{root}: Cell Tracking Challenge sequences ({', '.join(sorted(d.name for d in seqs))}) without truth: "
            f"expected {seqs[0].name}_GT/SEG/man_segTTT.tif (gold) or {seqs[0].name}_ST/SEG/man_segTTT.tif "
            "(silver) beside them; the challenge's test sequences have none, so they can be predicted, not trained on")


@dataclass(frozen=True)
class Frame:
    """The files of one frame: its image and the truth files it has."""

    name: str
    image: Path
    gold: Path | None
    silver: Path | None
    markers: Path | None


def numbered(folder: Path, pattern: re.Pattern, problems: list[str] | None = None) -> dict[int, Path]:
    """The files of ``folder`` whose name matches ``pattern`` (one group: the frame number), by frame number; other
    TIFF files of a segmentation folder are listed in ``problems`` when given. An empty dict for a missing
    folder."""
    if not folder.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        match = pattern.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
        elif problems is not None and path.suffix.lower() in (".tif", ".tiff"):
            problems.append(f"{path}: not a 2-D segmentation file name (expected man_segTTT.tif); 3-D datasets "
                            "(man_seg_TTT_ZZZ.tif slices) are not read: leave the file out")
    return found


def choose_truth(where: Where, truth: str | None, sequences: tuple[str, ...]) -> str:
    """The truth to read: ``truth``, the one a truth folder implies, or gold when one of ``sequences`` has gold
    frames (else silver).

    Raises:
        DataError: an unknown truth, or one that contradicts the truth folder given as the dataset.
    """
    if truth is not None and truth not in TRUTHS:
        raise DataError(f"truth {truth!r} is not a Cell Tracking Challenge truth; expected one of {', '.join(TRUTHS)}")
    if where.implied is not None:
        if truth is not None and truth != where.implied:
            raise DataError(f"{where.root / where.sequences[0]}_{'GT' if where.implied == 'gold' else 'ST'} holds "
                            f"the {where.implied} truth, but truth {truth!r} was asked for: give the dataset folder "
                            f"{where.root} with --split {where.sequences[0]} instead")
        return where.implied
    if truth is not None:
        return truth
    gold = any(numbered(where.root / f"{s}_GT" / "SEG", _SEG) for s in sequences)
    return "gold" if gold else "silver"


def choose_sequences(where: Where, split: str | None) -> tuple[str, ...]:
    """The sequences of ``split`` (``01`` or ``01,02``; None: all of ``where``).

    Raises:
        DataError: a sequence that is not there (the ones there named).
    """
    if split is None:
        return where.sequences
    wanted = tuple(s.strip() for s in split.split(",") if s.strip())
    missing = [s for s in wanted if s not in where.sequences]
    if missing or not wanted:
        raise DataError(f"{where.root}: no sequence {', '.join(missing) or repr(split)} with a truth folder; the "
                        f"sequences are {', '.join(where.sequences)} (--split {where.sequences[0]}, or several "
                        "separated by commas)")
    return wanted


def sequence_frames(root: Path, seq: str, truth: str, problems: list[str]) -> list[Frame]:
    """The frames of sequence ``seq`` that have ``truth``, with every truth file they have (silver and markers
    too for gold: they tell the unannotated cells); a truth file without its raw frame is a problem."""
    images = numbered(root / seq, _FRAME)
    gold = numbered(root / f"{seq}_GT" / "SEG", _SEG, problems) if truth != "silver" else {}
    silver = numbered(root / f"{seq}_ST" / "SEG", _SEG, problems if truth != "gold" else None)
    markers = numbered(root / f"{seq}_GT" / "TRA", _TRA) if truth != "silver" else {}
    wanted = set(gold) if truth == "gold" else set(silver) if truth == "silver" else set(gold) | set(silver)
    frames = []
    for t in sorted(wanted):
        if t not in images:
            problems.append(f"{gold.get(t) or silver[t]}: no raw frame t{t:03d}.tif in {root / seq}; expected the "
                            "frame this segmentation belongs to")
            continue
        name = f"{seq}/{images[t].name.split('.')[0]}"
        frames.append(Frame(name, images[t], gold.get(t), silver.get(t), markers.get(t)))
    return frames


@LAYOUTS.register("ctc", priority=35, detect=detect, near=near, looks_for="NN/ + NN_GT/ or NN_ST/ (Cell Tracking "
                  "Challenge)", instances=True, description="Cell Tracking Challenge: NN/tTTT.tif + NN_GT/SEG "
                  "(gold), NN_GT/TRA (markers), NN_ST/SEG (silver)", annotations=lambda root, split=None:
                  annotation_counts(root, split))
def scan(root: Path, split: str | None = None, truth: str | None = None, annotated_regions: bool = True) -> Scan:
    """One reader per frame that has the chosen truth, over the chosen sequences (see the module docstring).

    Raises:
        DataError: not a CTC folder, an unknown truth or sequence, or no frame with the chosen truth.
    """
    where = locate(root)
    if where is None:
        raise DataError(f"{root}: not a Cell Tracking Challenge folder; expected NN/tTTT.tif with NN_GT/SEG/"
                        "man_segTTT.tif (gold) or NN_ST/SEG/man_segTTT.tif (silver) beside it")
    sequences = choose_sequences(where, split)
    truth = choose_truth(where, truth, sequences)
    result = Scan(num_classes=2)
    for seq in sequences:
        frames = sequence_frames(where.root, seq, truth, result.problems)
        if not frames:
            logger.info("%s: no frame of sequence %s has a %s segmentation; left out", where.root, seq, truth)
        result.readers += [_reader(frame, truth, annotated_regions) for frame in frames]
    if not result.readers and not result.problems:
        other = "--truth silver" if truth != "silver" else "--truth gold"
        raise DataError(f"{where.root}: no frame of sequence(s) {', '.join(sequences)} has a "
                        f"{truth} segmentation ({'NN_GT/SEG' if truth != 'silver' else 'NN_ST/SEG'}/man_segTTT.tif); "
                        f"try {other}")
    logger.info("%s: %d frame(s) with the %s truth", where.root, len(result.readers), truth)
    return result


def _reader(frame: Frame, truth: str, annotated_regions: bool) -> Reader:
    """Read one frame and its truth files (final class labels with the ignore value, and instance labels)."""
    def read() -> list[Raw]:
        image = read_image(frame.image)
        needs_silver = truth != "gold" or annotated_regions
        gold, silver, markers = (read_instances(path, image.shape[:2]) if path is not None and wanted else None
                                 for path, wanted in ((frame.gold, True), (frame.silver, needs_silver),
                                                      (frame.markers, annotated_regions)))
        labels, instances = frame_truth(image, gold, silver, markers, truth, annotated_regions)
        mask_path = frame.silver if truth == "silver" or frame.gold is None else frame.gold
        return [Raw(frame.name, image, labels, frame.image, mask_path or frame.image, instances, final=True)]
    return read


def frame_truth(image: np.ndarray, gold: np.ndarray | None, silver: np.ndarray | None, markers: np.ndarray | None,
                truth: str, annotated_regions: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The class and instance labels of one frame from its truth arrays (see the module docstring).

    Args:
        image: the frame (its intensities seed the regions of unannotated cells that silver does not give).
        gold, silver: instance labels of the gold and silver truth, or None where the frame has none.
        markers: the tracking markers (one id per cell), or None.
        truth: one of :data:`TRUTHS`.
        annotated_regions: give the unannotated cells the ignore value (gold truths only).

    Returns:
        (uint8 class labels: 0 background, 1 cell, 255 not annotated; int32 instance labels, 0 = background).
    """
    if truth == "silver" or gold is None:
        objects = silver
    elif truth == "gold+silver" and silver is not None:
        objects = merge_truths(gold, silver)
    else:
        objects = gold
    if objects is None:
        raise ValueError(f"no {truth} truth given")
    objects = objects.astype(np.int32)
    labels = (objects > 0).astype(np.uint8)
    if truth != "silver" and annotated_regions:
        labels[unannotated_region(image, objects, silver if truth == "gold" else None, markers)] = IGNORE
    return labels, objects


def uncovered_objects(objects: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """The ids of the objects of ``objects`` that ``cover``'s objects cover at most half of."""
    flat = objects.ravel().astype(np.int64)
    area = np.bincount(flat)
    covered = np.bincount(flat[cover.ravel() > 0], minlength=area.size)
    ids = np.flatnonzero((area > 0) & (2 * covered <= area))
    return ids[ids > 0]


def merge_truths(gold: np.ndarray, silver: np.ndarray) -> np.ndarray:
    """Gold objects, plus every silver object gold covers at most half of, on the pixels gold leaves free (new ids
    above gold's)."""
    merged = gold.astype(np.int32)
    add = np.isin(silver, uncovered_objects(silver, gold)) & (gold == 0)
    merged[add] = silver[add].astype(np.int32) + int(gold.max(initial=0))
    return merged


def unannotated_markers(objects: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """The ids of the markers that have no pixel on an object: the cells the truth does not annotate."""
    present = np.unique(markers[markers > 0])
    touched = np.unique(markers[(markers > 0) & (objects > 0)])
    return np.setdiff1d(present, touched)


def silver_under(markers: np.ndarray, silver: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the pixels of the silver objects under the markers ``ids``, the ids of the markers on no silver object).
    A marker's silver object is the one holding most of its pixels."""
    on = np.isin(markers, ids) & (silver > 0)
    base = int(silver.max(initial=0)) + 1
    keys, counts = np.unique(markers[on].astype(np.int64) * base + silver[on], return_counts=True)
    marker, obj = keys // base, keys % base
    order = np.lexsort((-counts, marker))  # by marker, the largest overlap first
    first = np.unique(marker[order], return_index=True)[1]
    chosen = order[first]
    return np.isin(silver, obj[chosen]), np.setdiff1d(ids, marker[chosen])


def seeded_regions(image: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """A watershed of the smoothed image (Gaussian, sigma 1 px) from ``markers`` within a foreground estimate:
    the pixels brighter than the midpoint between the image median and Otsu's threshold, and the markers."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    grey = image.astype(np.float32)
    grey = grey.mean(axis=2) if grey.ndim == 3 else grey
    smooth = ndimage.gaussian_filter(grey, 1.0)
    foreground = markers > 0
    if smooth.max() > smooth.min():
        foreground |= smooth > 0.5 * (float(np.median(smooth)) + float(threshold_otsu(smooth)))
    return watershed(-smooth, markers=markers.astype(np.int32), mask=foreground)


def unannotated_region(image: np.ndarray, objects: np.ndarray, silver: np.ndarray | None,
                       markers: np.ndarray | None) -> np.ndarray:
    """The pixels of the cells ``objects`` leaves unannotated, widened by :data:`MARGIN` pixels, never on an
    object: the regions of the markers on no object (their silver object, else their watershed region), or without
    markers the silver objects ``objects`` covers at most half of; none without either."""
    from scipy import ndimage

    if markers is not None:
        ids = unannotated_markers(objects, markers)
        if ids.size == 0:
            return np.zeros(objects.shape, bool)
        region, rest = silver_under(markers, silver, ids) if silver is not None else (np.zeros(objects.shape, bool),
                                                                                      ids)
        if rest.size:
            region |= np.isin(seeded_regions(image, markers), rest)
    elif silver is not None:
        region = np.isin(silver, uncovered_objects(silver, objects))
    else:
        return np.zeros(objects.shape, bool)
    return ndimage.binary_dilation(region, iterations=MARGIN) & (objects == 0)


def annotation_counts(root: Path, split: str | None = None) -> dict[str, dict[str, int]]:
    """Per frame with a gold segmentation and tracking markers: ``cells`` (markers), ``annotated`` (markers with a
    pixel on a gold object), ``unannotated`` and ``gold_objects``. Frames whose files cannot be read or differ in
    size are left out (loading reports them).

    Raises:
        DataError: not a CTC folder, or an unknown sequence.
    """
    where = locate(Path(root))
    if where is None:
        raise DataError(f"{root}: not a Cell Tracking Challenge folder")
    counts: dict[str, dict[str, int]] = {}
    for seq in choose_sequences(where, split):
        images = numbered(where.root / seq, _FRAME)
        gold = numbered(where.root / f"{seq}_GT" / "SEG", _SEG)
        markers = numbered(where.root / f"{seq}_GT" / "TRA", _TRA)
        for t in sorted(set(gold) & set(markers)):
            try:
                seg, tra = read_image(gold[t]), read_image(markers[t])
            except DataError:
                continue
            if seg.shape != tra.shape:
                continue
            cells, missing = np.unique(tra[tra > 0]).size, unannotated_markers(seg, tra).size
            name = f"{seq}/{images[t].name.split('.')[0]}" if t in images else f"{seq}/t{t:03d}"
            counts[name] = {"cells": int(cells), "annotated": int(cells - missing), "unannotated": int(missing),
                            "gold_objects": int(np.unique(seg[seg > 0]).size)}
    return counts
