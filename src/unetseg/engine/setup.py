"""Turning a resolved configuration into the pieces of a run: data, network and loss."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError
from ..data.cache import GIB, default_cache_gib
from ..data.channels import image_channels
from ..data.dataset import LazySequence, Sample, SegmentationData
from ..data.io import DataError, to_channels
from ..data.layouts import load_dataset
from ..data.masks import default_class_names
from ..data.normalize import Normalization
from ..data.prepared import Preparation, PreparedImages, border_weight_map, touching_gap
from ..data.stats import DatasetStats, SampleFacts, value_counts
from ..fileio import atomic_write_text
from ..losses import DeepSupervisionLoss, build_loss, resolve_loss
from ..models import SegmentationModel, create_model
from .plan import DataFacts, head_outputs, split_indices

log = logging.getLogger("unetseg")


@dataclass
class RunData:
    """Normalised training and validation images with their labels, and what the data implies.

    The images are sequences: lists in memory, or (for a run's training images, and its validation images when
    they would take more than a quarter of the cache) :class:`~unetseg.data.prepared.View` sequences that read and
    prepare an image when indexed, so a run's memory does not grow with its number of images."""

    train_images: Sequence[np.ndarray]  # float32 (C, H, W)
    train_labels: Sequence[np.ndarray]  # (H, W)
    val_images: Sequence[np.ndarray]
    val_labels: Sequence[np.ndarray]
    val_names: list[str]
    train_weights: Sequence[np.ndarray] | None  # per-pixel loss weights (H, W) float32, with train.weight_map
    num_classes: int
    channels: int
    class_names: list[str]
    normalization: Normalization
    ignore_index: int | None = None
    val_instances: Sequence[np.ndarray] | None = None  # instance labels of the validation images, when it has them
    stats: DatasetStats | None = None  # of the training images, from the loading pass
    cache_bytes: int | None = None  # the bytes of prepared training images a run keeps (train.cache_size)


def load_datasets(config: Config) -> tuple[SegmentationData, SegmentationData | None]:
    """The training dataset named in ``config.data`` (with instance labels when it has them, or when the weight
    map needs them) and the separate validation dataset of ``data.val``, if any, both lazy: each file is read once
    here to check it and learn its facts, and again when a run needs it."""
    dc = config.data
    if not dc.train:
        raise ConfigError("data.train is required: the DATA folder with images/ and masks/ (--data DATA)")
    options = dict(mask_suffix=dc.mask_suffix, split=dc.split, ignore_index=dc.ignore_index, colormap=dc.colormap,
                   channel=dc.channel, plane=dc.plane, truth=dc.truth, annotated_regions=dc.annotated_regions,
                   lazy=True)
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
                       channel=dc.channel, plane=dc.plane, truth=dc.truth, annotated_regions=dc.annotated_regions,
                       lazy=True)
    return data, val


def data_facts(data: SegmentationData, val: SegmentationData | None) -> DataFacts:
    """The facts :func:`unetseg.engine.plan.plan_run` needs of the loaded data."""
    channels = max(data.channels, val.channels) if val is not None else data.channels
    shapes = tuple(s.shape for s in data.samples)
    instance_labels = any(s.has_instances for s in data.samples)
    share = None
    if instance_labels:  # the weight map's class balance follows it (from the loading pass's pixel counts)
        fractions = DatasetStats.of([_facts(s) for s in data.samples]).class_fractions(data.ignore_index)
        share = 1.0 - fractions.get(0, 0.0)
    return DataFacts(shapes, data.num_classes, channels, data.ignore_index, instance_labels, share)


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
    grey images are repeated to RGB, RGB images averaged to grey), else the data's.

    Nothing is read into memory for the training images: they are prepared when a patch needs them (through the
    cache of :class:`~unetseg.data.patches.PatchDataset`); dataset-scope normalisation statistics are fitted in one
    pass over them. The validation images are prepared here when they take at most a quarter of the cache
    (``train.cache_size``), else when each validation needs them."""
    dc, tc = config.data, config.train
    train, val = _split(config, data, val_data)
    channels = channels or data_facts(data, val_data).channels
    names = dc.class_names or default_class_names(data.num_classes)
    if len(names) != data.num_classes:
        raise ConfigError(f"data.class_names has {len(names)} names for {data.num_classes} classes: {names}")
    norm = Normalization(dc.normalization, dc.percentile_low, dc.percentile_high, dc.normalization_scope)
    norm = norm.fit(LazySequence(train, _Channels(channels)), seed=tc.seed)
    weight_map = (tc.weight_map_w0, tc.weight_map_sigma) if tc.weight_map else None
    balance = tc.weight_map_balance is not False  # unplanned (None): the paper's map
    preparation = Preparation(channels, norm, data.num_classes, weight_map, dc.ignore_index, balance)
    training = PreparedImages(train, preparation)
    cache_bytes = cache_bytes_of(config)
    val_images, val_labels, val_instances = _validation_images(val, dataclasses.replace(preparation, weight_map=None),
                                                               channels, cache_bytes)
    log.info("data: %d training and %d validation images, %d channel(s), %d classes; training images prepared when "
             "used, at most %.2f GiB of them kept (train.cache_size)", len(train), len(val), channels,
             data.num_classes, cache_bytes / GIB)
    if weight_map is not None:
        log.info("weight maps (w0=%g, sigma=%g px): computed when an image is prepared", *weight_map)
    stats = DatasetStats.of([_facts(s) for s in train])
    return RunData(training.images, training.labels, val_images, val_labels, [s.name for s in val],
                   training.weights if weight_map is not None else None, data.num_classes, channels, names, norm,
                   dc.ignore_index, val_instances, stats, cache_bytes)


def cache_bytes_of(config: Config) -> int:
    """The bytes of ``train.cache_size`` (GiB; None: :func:`~unetseg.data.cache.default_cache_gib`)."""
    gib = config.train.cache_size if config.train.cache_size is not None else default_cache_gib()
    return int(gib * GIB)


class _Channels:
    """A sample's image with ``channels`` channels (what normalisation statistics are fitted on)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, sample: Sample) -> np.ndarray:
        read = sample.read()
        assert read.image is not None
        return to_channels(read.image, self.channels, sample.image_path)


def _facts(sample: Sample) -> SampleFacts:
    """The loading pass's facts of ``sample`` (made from its arrays for a sample built in memory without them)."""
    if sample.facts is not None:
        return sample.facts
    assert sample.image is not None and sample.labels is not None
    values, counts = value_counts(sample.labels)
    return SampleFacts(sample.shape, image_channels(sample.image), dict(zip(values.tolist(), counts.tolist())),
                       sample.instances is not None)


def _validation_images(samples: list[Sample], preparation: Preparation, channels: int, cache_bytes: int
                       ) -> tuple[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray] | None]:
    """(images, labels, instance labels or None) of the validation ``samples``: prepared now when they take at
    most a quarter of ``cache_bytes``, else sequences that prepare an image when indexed (logged)."""
    prepared = PreparedImages(samples, preparation)
    size = sum(h * w * (4 * channels + 8) for h, w in (s.shape for s in samples))  # image, labels, instances
    if size <= cache_bytes // 4:
        return prepared.in_memory()
    log.info("data: the %d validation images (%.2f GiB prepared) are read when each validation needs them",
             len(samples), size / GIB)
    complete = bool(samples) and all(s.has_instances for s in samples)
    return prepared.images, prepared.labels, prepared.instances if complete else None


def save_data_stats(run_dir: Path, data: RunData) -> None:
    """Write what a run knows of its training data to ``run_dir / "data_stats.json"`` (atomically): the
    statistics of its training images (:class:`~unetseg.data.stats.DatasetStats`), its normalisation (with
    dataset-scope statistics) and the cache size. A resumed run computes them again, from the same files, to the
    same values."""
    stats = data.stats
    fractions = stats.class_fractions(data.ignore_index) if stats is not None else None
    record = {"train": stats.to_dict() if stats is not None else None,
              "class_fractions": {str(v): round(f, 6) for v, f in fractions.items()} if fractions is not None else None,
              "normalization": data.normalization.to_dict(),
              "cache_gib": round(data.cache_bytes / GIB, 3) if data.cache_bytes is not None else None}
    atomic_write_text(run_dir / "data_stats.json", json.dumps(record, indent=1) + "\n")


def border_weight_maps(samples: list[Sample], num_classes: int, config: Config) -> list[np.ndarray]:
    """The U-Net weight map of every sample (in memory): class-balance weights of its label image plus the border
    term ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` from its instance labels.

    Pixels where two objects touch are first made background in the sample's instance and class labels (a gap of
    about two pixels; :func:`unetseg.data.masks.touching_borders`), so the border term weights that gap. A run
    makes the same map of each image when it first uses it (:class:`~unetseg.data.prepared.Preparation`).
    """
    tc = config.train
    balance = tc.weight_map_balance is not False  # unplanned (None): the paper's map
    started = time.perf_counter()
    maps = []
    for sample in samples:
        assert sample.labels is not None and sample.instances is not None
        sample.labels, sample.instances = touching_gap(sample.labels, sample.instances)
        maps.append(border_weight_map(sample.labels, sample.instances, num_classes, tc.weight_map_w0,
                                      tc.weight_map_sigma, config.data.ignore_index, balance))
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
