"""Where the pictures of the HTML report come from: the files of an evaluation (the images, the predicted label
images as ``unetseg predict`` writes them, the true masks), or what ``unetseg evaluate --checkpoint`` predicted in
memory. The images are paired and read as :func:`unetseg.engine.evaluate.evaluate_folders` pairs and reads them, so
that the pictures show what the metrics scored."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...data.io import DataError, files_by_stem, read_image
from ...data.layouts import detect_layout
from ...data.masks import mask_to_labels
from ..evaluate import image_objects, prediction_files, read_prediction, truth_dataset
from .pictures import ReportImage


def images_folder(truth: str | os.PathLike, images: str | os.PathLike | None = None) -> Path:
    """The folder of the evaluated images: ``images``, else ``truth/images`` when ``truth`` is a DATA folder
    (images/ + masks/).

    Raises:
        DataError: no such folder (the message says to give it).
    """
    folder = Path(images) if images is not None else Path(truth) / "images"
    if not folder.is_dir():
        given = "" if images is not None else f" ({truth} has no images/ folder)"
        raise DataError(f"{folder}: no folder of images{given}; the report needs the evaluated images: give "
                        "--images DIR")
    return folder


def check_images(truth: str | os.PathLike, images: str | os.PathLike | None = None) -> None:
    """Fail early when the evaluated images cannot be found: a truth that is not a dataset of its own layout (such
    as a Cell Tracking Challenge sequence, which brings its images) needs :func:`images_folder`.

    Raises:
        DataError: no folder of images.
    """
    truth = Path(truth)
    if truth.is_dir() and not (truth / "masks").is_dir() and images is None:
        try:
            if detect_layout(truth) != "folder":
                return
        except DataError:
            pass
    images_folder(truth, images)


def folder_images(pred: str | os.PathLike, truth: str | os.PathLike, num_classes: int,
                  images: str | os.PathLike | None = None, ignore_index: int | None = None,
                  instances: bool = False, truth_instances: str | os.PathLike | None = None
                  ) -> Iterator[ReportImage]:
    """The evaluated images of a prediction folder, one at a time, in the order of their names.

    Args:
        pred: the folder of predicted label images (``<stem>.png``, with ``<stem>_instances.*`` for objects).
        truth: the true masks (a folder, or a DATA folder with ``masks/``), or a dataset of another layout (e.g. a
            Cell Tracking Challenge sequence), as ``unetseg evaluate --truth`` takes it.
        num_classes: the classes of the evaluation (its report's ``num_classes``).
        images: the folder of the input images (default: ``truth/images``; a dataset brings its own).
        ignore_index: the truth's value for unannotated pixels.
        instances: also give the predicted and true objects (see :func:`unetseg.engine.evaluate.image_objects`).
        truth_instances: a folder of true instance label images (implies ``instances``).

    Raises:
        DataError: a missing folder or image, a mask without a prediction, or an unreadable file.
    """
    instances = instances or truth_instances is not None
    files = None if truth_instances is None else files_by_stem(Path(truth_instances))
    labels, objects = prediction_files(pred)
    dataset = truth_dataset(truth, num_classes, ignore_index)
    if dataset is not None:
        ignore = ignore_index if ignore_index is not None else dataset.ignore_index
        known = ({s.name: s.instances for s in dataset.samples}
                 if all(s.instances is not None for s in dataset.samples) else None)
        for sample in sorted(dataset.samples, key=lambda s: s.image_path.stem):
            stem = sample.image_path.stem
            if stem not in labels:
                raise DataError(f"{pred}: no prediction for {sample.image_path} (expected {stem}.png)")
            yield _item(sample.name, sample.image, sample.labels, labels[stem], objects.get(stem), num_classes,
                        instances, files, truth_instances, ignore, known)
        return
    truth_dir = Path(truth) / "masks" if (Path(truth) / "masks").is_dir() else Path(truth)
    pictures = files_by_stem(images_folder(truth, images))
    for stem, mask in sorted(files_by_stem(truth_dir).items()):
        if stem not in labels:
            raise DataError(f"{pred}: no prediction for the mask {mask} (expected {stem}.png)")
        if stem not in pictures:
            raise DataError(f"{images_folder(truth, images)}: no image for the mask {mask} (expected {stem}.*)")
        truth_labels = mask_to_labels(read_image(mask), num_classes, mask, ignore_index)
        yield _item(stem, read_image(pictures[stem]), truth_labels, labels[stem], objects.get(stem), num_classes,
                    instances, files, truth_instances, ignore_index, None)


def _item(name: str, image: np.ndarray, truth: np.ndarray, pred_file: Path, objects_file: Path | None,
          num_classes: int, instances: bool, files: dict[str, Path] | None, truth_instances: Any,
          ignore_index: int | None, known: dict[str, np.ndarray] | None) -> ReportImage:
    """The :class:`ReportImage` of one image whose prediction is the file ``pred_file``."""
    pred, pred_objects = read_prediction(read_image(pred_file), num_classes, pred_file, instances, objects_file)
    item = ReportImage(name, image, truth, pred)
    if instances:
        item.pred_objects, item.true_objects = image_objects(name, pred, truth, pred_objects, files, truth_instances,
                                                             ignore_index, known)
    return item


def kept_images(kept: Iterable[tuple[Any, ...]], instances: bool = False,
                truth_instances: str | os.PathLike | None = None, ignore_index: int | None = None
                ) -> Iterator[ReportImage]:
    """The evaluated images of ``evaluate_checkpoint(..., kept=...)``: ``(name, image, predicted classes, true
    classes, true instances of the layout or None)`` tuples; with ``instances`` (implied by ``truth_instances``)
    the predicted objects are the connected components of the predicted foreground, the true ones those of
    ``truth_instances``, else the layout's, else the connected components of the truth."""
    kept = list(kept)
    instances = instances or truth_instances is not None
    files = None if truth_instances is None else files_by_stem(Path(truth_instances))
    known = {k[0]: k[4] for k in kept} if kept and all(k[4] is not None for k in kept) else None
    for name, image, pred, truth, _ in kept:
        item = ReportImage(name, image, truth, pred)
        if instances:
            item.pred_objects, item.true_objects = image_objects(name, pred, truth, None, files, truth_instances,
                                                                 ignore_index, known)
        yield item
