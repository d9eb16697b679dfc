"""The whole run configuration (model / data / train sections), read from and written to YAML.

A configuration file has up to three sections; every key is optional except ``data.train``::

    model: {name: unet_bn, base_channels: 32}
    data: {train: path/to/DATA, val_fraction: 0.2}
    train: {epochs: 50, batch_size: 4, patch_size: 256}
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..fileio import atomic_write_text
from .errors import ConfigError
from .sections import DataConfig, ModelConfig, TrainConfig
from .typecheck import build_section


@dataclass
class Config:
    """The whole run configuration."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def section_types(cls) -> dict[str, type]:
        """``{section name: section dataclass}``: model, data, train."""
        return {f.name: f.default_factory for f in dataclasses.fields(cls)}  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "Config":
        """Build and type-check a Config.

        Raises:
            ConfigError: unknown sections or keys, or values of the wrong type; the message names ``source``
                and the key.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with sections model/data/train, got {type(raw).__name__}")
        sections = cls.section_types()
        unknown = sorted(set(raw) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; valid sections: {sorted(sections)}")
        return cls(**{name: build_section(section_type, raw.get(name) or {}, f"{source}: {name}")
                      for name, section_type in sections.items()})

    def updated(self, section: str, **values: Any) -> "Config":
        """A new Config with keys of one section set (None values ignored); ``self`` is left untouched.

        Args:
            section: ``"model"``, ``"data"`` or ``"train"``.
            values: keys of that section and their new values.

        Raises:
            ConfigError: an unknown section or key, or a value of the wrong type (checked like a file).
        """
        sections = self.section_types()
        if section not in sections:
            raise ConfigError(f"unknown section {section!r}; valid sections: {sorted(sections)}")
        current = dataclasses.asdict(getattr(self, section))
        current.update({key: value for key, value in values.items() if value is not None})
        new = copy.deepcopy(self)
        setattr(new, section, build_section(sections[section], current, f"option {section}"))
        return new


def load_config(path: str | os.PathLike) -> Config:
    """Read a YAML configuration file.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or has a bad key or value; the message names the
            file and the key.
    """
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
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
