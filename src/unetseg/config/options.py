"""Option metadata carried by every configuration field: help text, choices, bounds and command-line flags.

A field is declared with :func:`option`, which stores an :class:`Option` in the field's metadata::

    lr: float = option(1e-3, help="learning rate", gt=0)

The command line (``unetseg.cli.options``) builds its arguments from this metadata and :func:`check_value`
applies the choices and bounds, so an option's type, default, help, flag and checks live in one place.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

METADATA_KEY = "option"


@dataclass(frozen=True)
class Option:
    """What a configuration field means and accepts.

    Attributes:
        help: one or more sentences for ``--help``.
        choices: the accepted values (a tuple or a registry: anything supporting ``in`` and iteration).
        gt, ge, lt, le: numeric bounds (greater than, at least, less than, at most); None: no bound.
        flag: the primary command-line flag; None: ``--`` + the key with ``_`` replaced by ``-``.
        aliases: further flags parsed to the same value (older or shorter spellings).
        metavar: the value's name in ``--help``; None: the key in capitals.
        positional: a positional command-line argument instead of a flag.
        required: the command line must give it.
    """

    help: str
    choices: Collection[Any] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    positional: bool = False
    required: bool = False

    def bounds_text(self) -> str:
        """The bounds in words: ``"> 0"``, ``">= 1"``, ``"in [0, 1)"``, or ``""`` when unbounded."""
        low = ("(", self.gt) if self.gt is not None else ("[", self.ge) if self.ge is not None else None
        high = (")", self.lt) if self.lt is not None else ("]", self.le) if self.le is not None else None
        if low and high:
            return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
        if low:
            return f"{'>' if low[0] == '(' else '>='} {low[1]}"
        if high:
            return f"{'<' if high[0] == ')' else '<='} {high[1]}"
        return ""

    def in_bounds(self, value: float) -> bool:
        """Whether ``value`` satisfies every bound."""
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))


def option(default: Any = dataclasses.MISSING, *, help: str, choices: Collection[Any] | None = None,
           gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None,
           flag: str | None = None, aliases: tuple[str, ...] = (), metavar: str | None = None,
           positional: bool = False, required: bool = False) -> Any:
    """A dataclass field with its :class:`Option` metadata (see there for the arguments).

    Mutable defaults (dicts, lists) become a factory returning a fresh copy; no default makes the field required
    when the dataclass is built.

    Returns:
        A ``dataclasses.field``.
    """
    meta = {METADATA_KEY: Option(help, choices, gt, ge, lt, le, flag, tuple(aliases), metavar, positional, required)}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_of(field: dataclasses.Field) -> Option:
    """The :class:`Option` of a dataclass field.

    Raises:
        TypeError: the field was not declared with :func:`option`.
    """
    meta = field.metadata.get(METADATA_KEY)
    if meta is None:
        raise TypeError(f"configuration field {field.name!r} has no option metadata (declare it with option())")
    return meta


def flags_of(field: dataclasses.Field) -> list[str]:
    """The command-line flags of a field, primary first (empty for a positional argument)."""
    meta = option_of(field)
    if meta.positional:
        return []
    return [meta.flag or "--" + field.name.replace("_", "-"), *meta.aliases]


def check_value(key: str, value: Any, meta: Option) -> None:
    """Apply the choices and bounds of ``meta`` to ``value`` (None, meaning "the default", always passes).

    Raises:
        ConfigError: naming ``key`` and the bad value, e.g. ``train.lr must be > 0, got -1``.
    """
    if value is None:
        return
    if meta.choices is not None and value not in meta.choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, meta.choices))}")
    if meta.bounds_text() and not meta.in_bounds(value):
        raise ConfigError(f"{key} must be {meta.bounds_text()}, got {value}")


def check_fields(options: Any, section: str) -> None:
    """:func:`check_value` for every field of the dataclass instance ``options``; keys read ``section.field``.

    Raises:
        ConfigError: the first field whose value is not accepted.
    """
    for field in dataclasses.fields(options):
        check_value(f"{section}.{field.name}", getattr(options, field.name), option_of(field))
