"""Turning a resolved configuration into the pieces of a run: data, network and loss."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError
from ..data.dataset import Sample, SegmentationData
from ..data.io import DataError, to_channels
from ..data.layouts import load_dataset
from ..data.masks import default_class_names, touching_borders
from ..data.normalize import Normalization
from ..losses import DeepSupervisionLoss, build_loss, resolve_loss
from ..models import SegmentationModel, create_model
from .plan import DataFacts, head_outputs, split_indices

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


def load_datasets(config: Config) -> tuple[SegmentationData, SegmentationData | None]:
    """The training dataset named in ``config.data`` (with instance labels when it has them, or when the weight
    map needs them) and the separate validation dataset of ``data.val``, if any."""
    dc = config.data
    if not dc.train:
        raise ConfigError("data.train is required: the DATA folder with images/ and masks/ (--data DATA)")
    options = dict(mask_suffix=dc.mask_suffix, split=dc.split, ignore_index=dc.ignore_index, colormap=dc.colormap,
                   channel=dc.channel, plane=dc.plane, truth=dc.truth, annotated_regions=dc.annotated_regions)
    if config.train.weight_map:
        data = load_dataset(dc.train, dc.layout, dc.num_classes, instances=True, **options)
    else:
        data = _with_instances_if_any(dc.train, dc.layout, dc.num_classes, options)
    if data.ignore_index is not None and dc.ignore_index is None:
        log.info("data: label value %d means 'not annotated' in this layout; it is left out of losses and metrics",
                 data.ignore_index)
    if not dc.val:
        return data, None
    ignore = dc.ignore_index if dc.ignore_index is not None else data.ignore_index
    val = load_dataset(dc.val, dc.layout, data.num_classes, mask_suffix=dc.mask_suffix,
                       split="val" if dc.layout in ("voc", "cityscapes") else None, ignore_index=ignore,
                       colormap=dc.colormap, training=False,  # validation images may be small or all background
                       channel=dc.channel, plane=dc.plane, truth=dc.truth, annotated_regions=dc.annotated_regions)
    return data, val


def data_facts(data: SegmentationData, val: SegmentationData | None) -> DataFacts:
    """The facts :func:`unetseg.engine.plan.plan_run` needs of the loaded data."""
    channels = max(data.channels, val.channels) if val is not None else data.channels
    shapes = tuple((int(s.image.shape[0]), int(s.image.shape[1])) for s in data.samples)
    return DataFacts(shapes, data.num_classes, channels, data.ignore_index)


def data_fingerprint(data: SegmentationData, val: SegmentationData | None = None) -> dict[str, list[int]]:
    """The training files of a run: ``{path: [size in bytes, modification time in ns]}`` for the image and mask
    of every sample of ``data`` (paths relative to its root) and of ``val`` (prefixed ``val:``), so that a resumed
    run can tell that its data changed (:func:`data_changes`)."""
    files: dict[str, list[int]] = {}
    for prefix, dataset in (("", data), ("val:", val)):
        for sample in dataset.samples if dataset is not None else ():
            for path in (sample.image_path, sample.mask_path):
                if path is None:
                    continue
                try:
                    stat = os.stat(path)
                except OSError:  # gone since it was read: it counts as removed
                    continue
                files[prefix + Path(os.path.relpath(path, dataset.root)).as_posix()] = [stat.st_size,
                                                                                        stat.st_mtime_ns]
    return files


def data_changes(before: dict[str, list[int]], now: dict[str, list[int]], limit: int = 5) -> str | None:
    """What differs between two :func:`data_fingerprint` results (``"2 added: a.png, b.png; 1 changed: c.png"``,
    at most ``limit`` files named in all), or None when they are the same."""
    groups = (("added", sorted(set(now) - set(before))), ("removed", sorted(set(before) - set(now))),
              ("changed (size or modification time)", sorted(k for k in set(now) & set(before)
                                                             if list(now[k]) != list(before[k]))))
    parts, named = [], 0
    for what, names in groups:
        if names:
            shown = names[:max(limit - named, 0)]
            named += len(shown)
            more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
            parts.append(f"{len(names)} {what}" + (f": {', '.join(shown)}" if shown else "") + more)
    return "; ".join(parts) or None


def _with_instances_if_any(root: str, layout: str, num_classes: int | None, options: dict) -> SegmentationData:
    """The dataset with its instance labels when it has them (a folder's ``labels/``, the dsb2018 layout), for
    choosing instance post-processing on validation; without them when they are missing or incomplete."""
    if layout in ("auto", "folder") and (Path(root) / "labels").is_dir():
        try:
            return load_dataset(root, layout, num_classes, instances=True, **options)
        except DataError as err:
            log.info("data: instance labels not used (%s)", err)
    return load_dataset(root, layout, num_classes, **options)


def _split(config: Config, data: SegmentationData, val: SegmentationData | None) -> tuple[list[Sample], list[Sample]]:
    if val is not None:
        return data.samples, val.samples
    try:
        train_idx, val_idx = split_indices(len(data.samples), config.data.val_fraction or 0.0, config.train.seed)
    except ValueError as err:
        raise ConfigError(f"{err} in {data.root}") from err
    return [data.samples[i] for i in train_idx], [data.samples[i] for i in val_idx]


def prepare_data(config: Config, data: SegmentationData, val_data: SegmentationData | None = None,
                 channels: int | None = None) -> RunData:
    """Split (with the resolved ``data.val_fraction``) and normalise the loaded data; the weight maps of
    ``train.weight_map``. ``channels``: the network's input channels when they are given (a fine-tuned network's;
    grey images are repeated to RGB, RGB images averaged to grey), else the data's."""
    dc = config.data
    train, val = _split(config, data, val_data)
    channels = channels or data_facts(data, val_data).channels
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
    outputs = head_outputs(config, num_classes)
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


def build_training_loss(config: Config, num_outputs: int) -> DeepSupervisionLoss:
    """The loss of ``config.train`` for a head with ``num_outputs`` channels, wrapped so that a network with
    several training heads (deep supervision) gets their mean loss. ``auto`` is CE + Dice (BCE + Dice for one
    channel). ``data.ignore_index`` becomes the loss's ``ignore_index`` unless the options set one. Bad options
    raise ConfigError naming ``train.loss_options``."""
    tc = config.train
    name = resolve_loss(tc.loss, num_outputs)
    options = dict(tc.loss_options)
    if config.data.ignore_index is not None:
        options.setdefault("ignore_index", config.data.ignore_index)
    try:
        return DeepSupervisionLoss(build_loss(name, num_outputs, **options))
    except ValueError as err:
        raise ConfigError(f"train.loss={tc.loss!r} with train.loss_options={tc.loss_options}: {err}") from err
