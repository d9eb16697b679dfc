"""Typed run configuration (model / data / train), read from and written to YAML with clear errors.

A configuration file has up to three sections; every key is optional except ``data.train``::

    model: {name: unet_bn, base_channels: 32}
    data: {train: path/to/DATA, val_fraction: 0.2}
    train: {epochs: 50, batch_size: 4, patch_size: 256}
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it and says what was expected."""


@dataclass
class ModelConfig:
    """Which network to build. None means "the preset's default" (or, for num_classes, "from the data")."""

    name: str = "unet_bn"
    depth: int | None = None
    base_channels: int | None = None
    norm: str | None = None
    up_mode: str | None = None
    dropout: float | None = None
    num_classes: int | None = None  # output channels; None: 1 (sigmoid) for binary data, else data.num_classes
    options: dict[str, Any] = field(default_factory=dict)  # further options of the model (see `unetseg models`)


@dataclass
class DataConfig:
    """Where the images are and how to read them."""

    train: str = ""  # the dataset folder (images/ + masks/, or another layout)
    layout: str = "auto"  # auto | folder | dsb2018 | nnunet | voc | cityscapes (see `unetseg inspect`)
    mask_suffix: str = ""  # folder layout: masks/<stem><suffix>.* pairs images/<stem>.*
    colormap: str | None = None  # folder layout: YAML/JSON file of class index -> [R, G, B] for colour-coded masks
    split: str | None = None  # voc / cityscapes: which split of `train` to read (default train); val uses "val"
    val: str | None = None  # a separate validation folder; else val_fraction of train is held out
    val_fraction: float | None = None  # None: 20% of the images, at most max(50 images, 10%) (engine.recipe)
    num_classes: int | None = None  # label values in the masks incl. background (2 = binary); None: detect
    class_names: list[str] | None = None
    ignore_index: int | None = None  # mask value meaning "not annotated" (e.g. 255): left out of losses and metrics
    normalization: str = "percentile"  # percentile | zscore | scale
    normalization_scope: str = "image"  # image (each image's own statistics) | dataset (fitted on training images)
    percentile_low: float = 1.0
    percentile_high: float = 99.8


@dataclass
class TrainConfig:
    """How to train."""

    epochs: int | None = None  # None: fitted to time_budget, else 50
    time_budget: float | None = None  # minutes for the whole run; epochs are fitted to it (alternative to epochs)
    batch_size: int | None = None  # None: from the patch size (see unetseg.engine.recipe)
    patch_size: int | None = None  # output patch side; None: from the image sizes (see unetseg.engine.recipe)
    samples_per_epoch: int | None = None  # patches per epoch; None: enough to cover the training pixels once
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.99  # sgd only (the paper's value)
    schedule: str = "cosine"  # cosine | poly | constant
    warmup_epochs: int = 0
    tune_prediction: bool = True  # after training, choose TTA, clean-up and instance method on the validation set
    loss: str = "auto"  # one of unetseg.losses.LOSSES; auto = CE+Dice (BCE+Dice for a one-channel head)
    loss_options: dict[str, Any] = field(default_factory=dict)  # e.g. {class_weights: [1, 3], ignore_index: 255}
    weight_map: bool = False  # the U-Net border weight map (needs DATA/labels instance labels)
    weight_map_w0: float = 10.0
    weight_map_sigma: float = 5.0  # pixels
    augment: bool = True
    augmentation: dict[str, Any] = field(default_factory=dict)  # overrides of the default spec, e.g. {elastic: false}
    foreground_fraction: float = 0.33  # share of patches centred on foreground (rare classes get seen)
    monitor: str = "foreground_dice"  # validation metric that picks the best checkpoint (higher is better)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 autocast + channels-last where the device has native bf16) | fp32 | bf16
    compile: bool = False  # torch.compile the network (opt-in; compiles once per input shape)
    num_workers: int = 0
    output_dir: str = "runs"
    name: str | None = None  # run folder name under output_dir; None: a timestamp


@dataclass
class Config:
    """The whole run configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "Config":
        """Build and type-check a Config; unknown sections/keys and wrong types raise :class:`ConfigError`."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with sections model/data/train, got {type(raw).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; valid sections: {sorted(sections)}")
        built = {}
        for name, f in sections.items():
            section_cls = f.default_factory  # type: ignore[misc]
            built[name] = _build_section(section_cls, raw.get(name) or {}, f"{source}: {name}")
        return cls(**built)

    def override(self, section: str, **values: Any) -> None:
        """Set keys of one section, ignoring None values; the result is type-checked like a file."""
        current = dataclasses.asdict(getattr(self, section))
        current.update({k: v for k, v in values.items() if v is not None})
        setattr(self, section, _build_section(type(getattr(self, section)), current, f"option {section}"))


def _build_section(section_cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(section_cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {list(hints)}")
    values = {}
    for key, value in raw.items():
        values[key] = _check_type(value, hints[key], f"{where}.{key}")
    return section_cls(**values)


def _check_type(value: Any, expected: Any, where: str) -> Any:
    """Return ``value`` (ints accepted for floats) or raise ConfigError naming the key and the expected type."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {expected}")
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a mapping of option names to values, got {value!r}")
        return dict(value)
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if expected is Any:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def load_config(path: str | os.PathLike) -> Config:
    """Read a YAML configuration file; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration file ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return Config.from_dict(raw, source=str(path))


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML atomically (temporary file, then rename)."""
    from .fileio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
