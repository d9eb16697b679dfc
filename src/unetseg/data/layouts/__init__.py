"""Dataset layouts: one module per layout, each registering its scan function in :data:`LAYOUTS`.

Layouts (``load_dataset(root, layout=...)``; ``auto`` tries them in this order):

``nnunet``
    nnU-Net v2 raw dataset (2-D image formats), see :mod:`.nnunet`.
``voc``
    Pascal VOC segmentation, see :mod:`.voc`.
``cityscapes``
    Cityscapes ``gtFine`` label ids mapped to the 19 training classes, see :mod:`.cityscapes`.
``folder``
    ``DATA/images/<stem>.*`` + ``DATA/masks/<stem><mask_suffix>.*`` (+ ``DATA/labels/<stem>.*`` instance labels),
    multi-page TIFF stacks expanded page by page, see :mod:`.folder`.
``dsb2018``
    Kaggle Data Science Bowl 2018: ``DATA/<id>/images/<id>.png`` + ``DATA/<id>/masks/*.png``, see :mod:`.dsb2018`.

Ignore value: the ``voc`` and ``cityscapes`` layouts (and ``nnunet`` datasets with an ``"ignore"`` label) return
labels with the value **255 = ignore** (void/boundary pixels, not a class); ``SegmentationData.num_classes`` counts
the real classes only (21 for VOC, 19 for Cityscapes).

Errors: every layout first *scans* its files and collects every problem it finds (unpaired files, missing files,
missing dataset.json keys, ...), then every sample is read and checked, collecting the failures too.
:func:`load_dataset` raises one :class:`DataError` listing them (the first 5 and a count); :func:`scan_dataset`
(used by ``unetseg inspect``) returns them instead (see :mod:`.loading`).

Adding a layout: a new module in this package with one ``@LAYOUTS.register(...)`` scan function (see
:mod:`.base`); every module of the package is imported here, so it is registered on import.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import LAYOUTS, Raw, Scan, check_size, has_alpha, raise_problems
from .folder import load_folder, pair_files, pair_folder
from .loading import collect_dataset, detect_layout, load_dataset, scan_dataset, scan_layout

for _module in pkgutil.iter_modules(__path__):  # every layout module registers itself on import
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "LAYOUTS",
    "Raw",
    "Scan",
    "check_size",
    "collect_dataset",
    "detect_layout",
    "has_alpha",
    "load_dataset",
    "load_folder",
    "pair_files",
    "pair_folder",
    "raise_problems",
    "scan_dataset",
    "scan_layout",
]
