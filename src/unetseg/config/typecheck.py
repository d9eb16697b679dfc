"""Building a configuration dataclass from a plain mapping, checking every value against the field's type."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from .errors import ConfigError


def field_types(options_type: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of a dataclass type, in field order (class variables left out)."""
    hints = typing.get_type_hints(options_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(options_type)}


def build_section(options_type: type, raw: Any, where: str) -> Any:
    """An instance of the dataclass ``options_type`` from ``raw``; missing keys take their defaults.

    Args:
        options_type: a configuration dataclass (e.g. ``TrainConfig``).
        raw: a mapping of field names to values.
        where: what the error messages name (``"file.yaml: train"``).

    Raises:
        ConfigError: ``raw`` is not a mapping, has an unknown key, or a value of the wrong type; the message
            names ``where`` and the key.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = field_types(options_type)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {list(hints)}")
    values = {key: check_type(value, hints[key], f"{where}.{key}") for key, value in raw.items()}
    try:
        return options_type(**values)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where}: {err}") from err


def check_type(value: Any, expected: Any, where: str) -> Any:
    """Return ``value`` (ints accepted for floats) or raise ConfigError naming the key and the expected type."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, typing.get_args(expected), where, expected)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a mapping of option names to values, got {value!r}")
        return dict(value)
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [check_type(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if expected is Any:
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def _check_union(value: Any, options: tuple[Any, ...], where: str, expected: Any) -> Any:
    if value is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return check_type(value, option, where)
        except ConfigError as err:
            errors.append(str(err))
    raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {expected}")
