"""Command-line arguments generated from the configuration dataclasses, and read back into them.

:func:`add_arguments` adds one argument per field, grouped by the dataclass's section, from the field's type and
:class:`unetseg.config.Option` metadata:

- ``bool``: ``--x`` / ``--no-x`` (``argparse.BooleanOptionalAction``);
- ``dict``: repeatable ``KEY=VALUE``, the value read as YAML (``true``, ``3``, ``[1, 3]``);
- ``list``: one or more values (``nargs="+"``);
- anything else: one value of the field's type, limited to the field's choices.

Every argument defaults to None, meaning "not given", so that :func:`config_from_args` lays only the given flags
over a ``--config`` file.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

import yaml

from ..config import (Config, TrainCommandConfig, build_section, field_types, flags_of, load_config,
                      option_of)


def key_value(item: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` to ``(KEY, VALUE)`` with the value read as YAML.

    Raises:
        argparse.ArgumentTypeError: no ``=``, an empty key or a value that is not YAML.
    """
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. name=3, got {item!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{item!r}: the value is not valid YAML ({err})") from err


def dest_of(options_type: type, name: str) -> str:
    """The argparse destination of field ``name`` of ``options_type``: ``"<section>.<name>"``."""
    return f"{options_type.SECTION}.{name}"


def _value_type(hint: Any) -> Any:
    """The type of ``hint`` without ``None`` (``int | None`` -> ``int``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return hint


def _default_text(field: dataclasses.Field) -> str:
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if default in (None, "", {}, [], dataclasses.MISSING):
        return ""
    return f" (default: {default})"


def argument_settings(options_type: type, field: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """The keyword arguments of ``parser.add_argument`` for one field (see the module docstring)."""
    meta = option_of(field)
    settings: dict[str, Any] = {"help": (meta.help + _default_text(field)).replace("%", "%%"), "default": None}
    if not meta.positional:
        settings.update(dest=dest_of(options_type, field.name), required=meta.required)
    value_type = _value_type(hint)
    origin = typing.get_origin(value_type)
    if value_type is bool:
        return {**settings, "action": argparse.BooleanOptionalAction}
    settings["metavar"] = meta.metavar or (None if meta.choices is not None else field.name.upper())
    if origin is dict:
        return {**settings, "action": "append", "type": key_value}
    if origin is list:
        return {**settings, "nargs": "+", "type": typing.get_args(value_type)[0]}
    return {**settings, "type": value_type, "choices": meta.choices}


def add_arguments(parser: argparse.ArgumentParser, *options_types: type) -> None:
    """Add an argument for every field of each dataclass in ``options_types``, one argument group per section.

    Raises:
        ValueError: two fields share a flag (argparse's conflict error).
    """
    for options_type in options_types:
        doc = (options_type.__doc__ or "").strip().splitlines()
        group = parser.add_argument_group(f"{options_type.SECTION} options", doc[0] if doc else None)
        hints = field_types(options_type)
        for field in dataclasses.fields(options_type):
            settings = argument_settings(options_type, field, hints[field.name])
            names = flags_of(field) or [dest_of(options_type, field.name)]
            group.add_argument(*names, **settings)


def read_arguments(args: argparse.Namespace, options_type: type) -> dict[str, Any]:
    """``{field name: value}`` of the fields of ``options_type`` given on the command line (dict fields built
    from their ``KEY=VALUE`` items)."""
    values = {}
    for name, hint in field_types(options_type).items():
        value = getattr(args, dest_of(options_type, name), None)
        if value is not None:
            values[name] = dict(value) if typing.get_origin(_value_type(hint)) is dict else value
    return values


def options_from_args(args: argparse.Namespace, options_type: type) -> Any:
    """An instance of ``options_type``: the given flags, defaults for the others (type-checked).

    Raises:
        ConfigError: a value of the wrong type or a required option missing.
    """
    return build_section(options_type, read_arguments(args, options_type), f"{options_type.SECTION} options")


def config_from_args(args: argparse.Namespace) -> Config:
    """The ``--config`` file (if any) with the run options given on the command line laid over it; ``KEY=VALUE``
    options are added to the file's mapping, other options replace the file's value.

    Raises:
        ConfigError: the file or a value is wrong.
    """
    path = options_from_args(args, TrainCommandConfig).config
    config = load_config(path) if path else Config()
    for section, section_type in Config.section_types().items():
        values = read_arguments(args, section_type)
        current = getattr(config, section)
        for key, value in values.items():
            if isinstance(value, dict):
                values[key] = {**getattr(current, key), **value}
        config = config.updated(section, **values)
    return config
