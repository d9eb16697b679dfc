"""``--show-augmentations``: a picture of what the network will see, before any training."""

from __future__ import annotations

import os

import numpy as np

from ..config import Config, validate
from ..data.augment import augmentation_grid, build_augmentation
from ..data.sampling import crop_mirror
from ..device import resolve_device
from ..precision import resolve_precision
from .finetune import read_init
from .run import plan_and_prepare
from .setup import build_network


def preview_augmentations(config: Config, path: str | os.PathLike, n: int = 8) -> None:
    """Write a PNG grid: training tiles (the network's input size, from the first training images) and ``n``
    augmented versions with their masks (and weight maps with ``train.weight_map``), as ``config`` would train
    (planned by the same recipe as a run)."""
    validate(config)
    device = resolve_device(config.train.device)
    init = read_init(config.train.init) if config.train.init else None  # fine-tuning: the checkpoint's network
    config, data, _ = plan_and_prepare(config, device, resolve_precision(config.train.precision, device), init=init)
    model = build_network(config, data.channels, data.num_classes)
    size = model.input_size_for(config.train.patch_size)  # the network only sets the input size here
    samples = []
    for i, (image, labels) in enumerate(zip(data.train_images[:n], data.train_labels[:n])):
        top, left = (labels.shape[0] - size) // 2, (labels.shape[1] - size) // 2
        sample = [crop_mirror(image, top, left, size, size), crop_mirror(labels, top, left, size, size)]
        if data.train_weights is not None:
            sample.append(crop_mirror(data.train_weights[i], top, left, size, size).astype(np.float32))
        samples.append(tuple(sample))
    augmentation_grid(samples, build_augmentation(config.train.augmentation), path, n=n, seed=config.train.seed)
