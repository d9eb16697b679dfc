"""The dataset every layout loads to: samples (image, class labels, optional instance labels) and what they hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One image with its class-index label image."""

    name: str
    image: np.ndarray  # (H, W, C) as stored in the file
    labels: np.ndarray  # (H, W) class indices
    image_path: Path
    mask_path: Path
    instances: np.ndarray | None = None  # (H, W) instance labels (0 = background, 1..N objects) when read


@dataclass
class SegmentationData:
    """A validated dataset: the samples, the number of classes and of image channels."""

    root: Path
    samples: list[Sample]
    num_classes: int
    channels: int
    ignore_index: int | None = None  # the label value meaning "not annotated" (255 for voc/cityscapes), if any
