"""One registry type for every extension point: models, losses, layouts, optimizers, schedules, norms and
instance methods.

A registry maps names to factories. A factory is registered with a decorator, listed with :meth:`Registry.names`
and built with :meth:`Registry.build`, which checks the keyword options against the factory's signature and
fails with a message that lists the valid names or options::

    LOSSES = Registry("loss")

    @LOSSES.register("dice", description="soft Dice")
    def dice(num_outputs: int, smooth: float = 1.0) -> nn.Module: ...

    LOSSES.build("dice", num_outputs=2, smooth=0.5)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown name, a name registered twice, or an option the factory does not take."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered factory with its name and free-form information (description, paper, priority, ...)."""

    name: str
    factory: Callable[..., T]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """The one-line description given at registration ('' when none)."""
        return str(self.info.get("description", ""))


class Registry(Generic[T]):
    """Named factories of one kind (``kind`` appears in error messages, e.g. ``"loss"``).

    Names are listed in registration order unless ``sort`` is True.
    """

    def __init__(self, kind: str, sort: bool = False) -> None:
        self.kind = kind
        self.sort = sort
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **info: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory (a function or a class) under ``name`` with ``info``."""

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, factory, dict(info))
            return factory

        return wrap

    def names(self) -> list[str]:
        """The registered names."""
        return sorted(self._entries) if self.sort else list(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        """The registered entries, in :meth:`names` order."""
        return (self._entries[name] for name in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Entry[T]:
        """The entry of ``name``; RegistryError listing the registered names when unknown."""
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._entries[name]

    def options(self, name: str) -> dict[str, Any]:
        """The keyword options the factory of ``name`` accepts, with their defaults (``inspect.Parameter.empty``
        for required ones); positional-only and ``*args``/``**kwargs`` parameters are not listed."""
        params = inspect.signature(self.get(name).factory).parameters
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {key: p.default for key, p in params.items() if p.kind in kinds}

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        """RegistryError naming the options of ``options`` that the factory of ``name`` does not take."""
        valid = self.options(name)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise RegistryError(f"{self.kind} {name!r} has no option {', '.join(map(repr, unknown))}; "
                                f"valid options: {', '.join(valid) or 'none'}")

    def build(self, name: str, *args: Any, **options: Any) -> T:
        """Call the factory of ``name`` with ``args`` and ``options`` after checking the option names."""
        self.check_options(name, options)
        return self.get(name).factory(*args, **options)
