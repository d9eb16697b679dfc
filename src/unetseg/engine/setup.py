"""Turning a configuration into the pieces of a run: data, network, optimizer, loss."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config, ConfigError
from ..data.folder import FolderData, Sample
from ..data.io import DataError
from ..data.layouts import LAYOUTS, load_dataset
from ..data.augment import build_augmentation
from ..data.io import to_channels
from ..data.masks import default_class_names, touching_borders
from ..data.normalize import MODES as NORMALIZATIONS
from ..data.normalize import Normalization
from ..losses import LOSSES, DeepSupervisionLoss, build_loss
from ..models import SegmentationModel, create_model
from ..precision import PRECISIONS
from .recipe import val_fraction_for
from ..optim.schedules import SCHEDULES

log = logging.getLogger("unetseg")


@dataclass
class RunData:
    """Normalised training and validation images with their labels, and what the data implies."""

    train_images: list[np.ndarray]  # float32 (C, H, W)
    train_labels: list[np.ndarray]  # (H, W)
    val_images: list[np.ndarray]
    val_labels: list[np.ndarray]
    val_names: list[str]
    train_weights: list[np.ndarray] | None  # per-pixel loss weights (H, W) float32, with train.weight_map
    num_classes: int
    channels: int
    class_names: list[str]
    normalization: Normalization
    ignore_index: int | None = None
    val_instances: list[np.ndarray] | None = None  # instance labels of the validation images, when the data has them


_CHOICES = {
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.schedule": SCHEDULES,
    "train.loss": LOSSES,
    "train.monitor": ("foreground_dice", "mean_iou", "pixel_accuracy", "mean_class_accuracy", "fw_iou"),
    "data.normalization": NORMALIZATIONS,
    "data.layout": ("auto", *LAYOUTS),
    "data.normalization_scope": ("image", "dataset"),
    "train.precision": PRECISIONS,
}


def check_config(config: Config) -> None:
    """Range and choice checks that types alone cannot express; ConfigError names the key and the bad value."""
    tc, dc = config.train, config.data
    positive = {"train.epochs": tc.epochs, "train.batch_size": tc.batch_size, "train.patch_size": tc.patch_size,
                "train.lr": tc.lr, "train.samples_per_epoch": tc.samples_per_epoch,
                "train.time_budget": tc.time_budget}
    positive = {key: value for key, value in positive.items() if value is not None}  # None: the recipe chooses
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    for key, value in {"train.weight_map_w0": tc.weight_map_w0, "train.weight_map_sigma": tc.weight_map_sigma}.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    for key, value in {"train.weight_decay": tc.weight_decay, "train.warmup_epochs": tc.warmup_epochs,
                       "train.num_workers": tc.num_workers, "train.seed": tc.seed}.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    if tc.epochs is not None and tc.time_budget is not None:
        raise ConfigError(f"train.epochs={tc.epochs} and train.time_budget={tc.time_budget}: set one of them "
                          "(the time budget fits the number of epochs)")
    if dc.val_fraction is not None and not 0.0 <= dc.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {dc.val_fraction}")
    if not 0.0 <= tc.foreground_fraction <= 1.0:
        raise ConfigError(f"train.foreground_fraction must be in [0, 1], got {tc.foreground_fraction}")
    try:
        build_augmentation(tc.augmentation)
    except ValueError as err:
        raise ConfigError(f"train.augmentation: {err}") from err


def _split(data: FolderData, fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    n = len(data.samples)
    n_val = int(round(n * fraction))
    if fraction > 0 and n_val == 0 and n > 1:
        n_val = 1
    if n_val >= n:
        raise ConfigError(f"data.val_fraction={fraction} leaves no training image out of {n} in {data.root}")
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(data.samples) if i not in val_idx]
    return train, [s for i, s in enumerate(data.samples) if i in val_idx]


def _with_instances_if_any(root: str, layout: str, num_classes: int | None, options: dict) -> FolderData:
    """The dataset with its instance labels when it has them (a folder's ``labels/``, the dsb2018 layout), for
    choosing instance post-processing on validation; without them when they are missing or incomplete."""
    if layout in ("auto", "folder") and (Path(root) / "labels").is_dir():
        try:
            return load_dataset(root, layout, num_classes, instances=True, **options)
        except DataError as err:
            log.info("data: instance labels not used (%s)", err)
    return load_dataset(root, layout, num_classes, **options)


def prepare_data(config: Config) -> RunData:
    """Read, validate, split and normalise the data named in ``config.data``."""
    dc = config.data
    if not dc.train:
        raise ConfigError("data.train is required: the DATA folder with images/ and masks/ (--data DATA)")
    options = dict(mask_suffix=dc.mask_suffix, split=dc.split, ignore_index=dc.ignore_index, colormap=dc.colormap)
    if config.train.weight_map:
        data = load_dataset(dc.train, dc.layout, dc.num_classes, instances=True, **options)
    else:
        data = _with_instances_if_any(dc.train, dc.layout, dc.num_classes, options)
    if data.ignore_index is not None and dc.ignore_index is None:
        dc.ignore_index = data.ignore_index  # the layout's own "not annotated" value (voc, cityscapes)
        log.info("data: label value %d means 'not annotated' in this layout; it is left out of losses and metrics",
                 data.ignore_index)
    if dc.val:
        val_data = load_dataset(dc.val, dc.layout, data.num_classes, mask_suffix=dc.mask_suffix,
                                split="val" if dc.layout in ("voc", "cityscapes") else None,
                                ignore_index=dc.ignore_index, colormap=dc.colormap)
        train, val = data.samples, val_data.samples
        channels = max(data.channels, val_data.channels)
    else:
        if dc.val_fraction is None:
            dc.val_fraction = val_fraction_for(len(data.samples))
        train, val = _split(data, dc.val_fraction, config.train.seed)
        channels = data.channels
    names = dc.class_names or default_class_names(data.num_classes)
    if len(names) != data.num_classes:
        raise ConfigError(f"data.class_names has {len(names)} names for {data.num_classes} classes: {names}")
    train_images = [to_channels(s.image, channels, s.image_path) for s in train]
    norm = Normalization(dc.normalization, dc.percentile_low, dc.percentile_high, dc.normalization_scope)
    norm = norm.fit(train_images, seed=config.train.seed)
    prep = [norm(image) for image in train_images]
    prep_val = [norm(to_channels(s.image, channels, s.image_path)) for s in val]
    log.info("data: %d training and %d validation images, %d channel(s), %d classes",
             len(train), len(val), channels, data.num_classes)
    weights = border_weight_maps(train, data.num_classes, config) if config.train.weight_map else None
    val_instances = [s.instances for s in val] if val and all(s.instances is not None for s in val) else None
    return RunData(prep, [s.labels for s in train], prep_val, [s.labels for s in val], [s.name for s in val],
                   weights, data.num_classes, channels, names, norm, dc.ignore_index, val_instances)


def border_weight_maps(samples: list[Sample], num_classes: int, config: Config) -> list[np.ndarray]:
    """The U-Net weight map of every training sample, computed once per run: class-balance weights of its label
    image plus the border term ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` from its instance labels.

    Pixels where two objects touch are first made background in the sample's instance and class labels (a gap of
    about two pixels; :func:`unetseg.data.masks.touching_borders`), so the border term weights that gap.
    """
    from ..data.weightmap import class_balance_weights, unet_weight_map

    tc = config.train
    started = time.perf_counter()
    maps = []
    for sample in samples:
        contact = touching_borders(sample.instances)  # touching objects get a background gap to learn
        sample.instances = np.where(contact, 0, sample.instances)
        sample.labels = np.where(contact, 0, sample.labels).astype(sample.labels.dtype)
        border = unet_weight_map(sample.instances, tc.weight_map_w0, tc.weight_map_sigma, class_weights=None) - 1.0
        ignored = sample.labels == config.data.ignore_index if config.data.ignore_index is not None else False
        table = class_balance_weights(sample.labels[~np.asarray(ignored)], num_classes)
        balance = np.where(ignored, 0.0, table[np.minimum(sample.labels, num_classes - 1)])  # ignored pixels: 0
        maps.append((balance + border).astype(np.float32))
    log.info("weight maps (w0=%g, sigma=%g px) for %d images in %.1f s", tc.weight_map_w0, tc.weight_map_sigma,
             len(maps), time.perf_counter() - started)
    return maps


def build_network(config: Config, channels: int, num_classes: int) -> SegmentationModel:
    """The network of ``config.model`` for ``channels`` inputs; its output channels follow the data's classes."""
    mc = config.model
    outputs = mc.num_classes if mc.num_classes is not None else (1 if num_classes == 2 else num_classes)
    if outputs != num_classes and not (num_classes == 2 and outputs == 1):
        raise ConfigError(
            f"model.num_classes={outputs} does not fit data with {num_classes} classes "
            f"(expected {num_classes}" + (" or 1 for a sigmoid head)" if num_classes == 2 else ")")
        )
    try:
        named = {"depth": mc.depth, "base_channels": mc.base_channels, "norm": mc.norm, "up_mode": mc.up_mode,
                 "dropout": mc.dropout}
        named = {k: v for k, v in named.items() if v is not None}
        clash = sorted(set(named) & set(mc.options))
        if clash:
            raise ConfigError(f"model.options repeats {clash}; set them once, as model keys")
        reserved = sorted({"in_channels", "num_classes"} & set(mc.options))
        if reserved:
            raise ConfigError(f"model.options cannot set {reserved}: in_channels comes from the images, "
                              "num_classes from the masks (or model.num_classes / --num-classes)")
        return create_model(mc.name, in_channels=channels, num_classes=outputs, **named, **mc.options)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from err


def build_optimizer(config: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam (default), AdamW or SGD with Nesterov momentum, from ``config.train``."""
    tc = config.train
    if tc.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    if tc.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    if tc.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, nesterov=True,
                               weight_decay=tc.weight_decay)
    raise ConfigError(f"train.optimizer={tc.optimizer!r} is not one of {', '.join(_CHOICES['train.optimizer'])}")


def build_training_loss(config: Config, num_outputs: int) -> DeepSupervisionLoss:
    """The loss of ``config.train`` for a head with ``num_outputs`` channels, wrapped so that a network with
    several training heads (deep supervision) gets their mean loss. ``auto`` is CE + Dice (BCE + Dice for one
    channel). ``data.ignore_index`` becomes the loss's ``ignore_index`` unless the options set one. Bad options
    raise ConfigError naming ``train.loss_options``."""
    tc = config.train
    name = tc.loss if tc.loss != "auto" else ("bce_dice" if num_outputs == 1 else "ce_dice")
    options = dict(tc.loss_options)
    if config.data.ignore_index is not None:
        options.setdefault("ignore_index", config.data.ignore_index)
    try:
        return DeepSupervisionLoss(build_loss(name, num_outputs, **options))
    except ValueError as err:
        raise ConfigError(f"train.loss={tc.loss!r} with train.loss_options={tc.loss_options}: {err}") from err
