"""A registry of named network presets: ``create_model(name, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from .base import SegmentationModel


@dataclass(frozen=True)
class ModelEntry:
    """A registered preset: its factory, a one-line description and the paper it comes from."""

    name: str
    factory: Callable[..., SegmentationModel]
    description: str
    paper: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, paper: str) -> Callable:
    """Decorator registering a factory function under ``name``; its keyword arguments are the preset's options."""

    def wrap(factory: Callable[..., SegmentationModel]) -> Callable[..., SegmentationModel]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, description, paper)
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ValueError listing the registered names when unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_options(name: str) -> dict[str, Any]:
    """The keyword arguments a preset accepts, with their defaults."""
    params = inspect.signature(model_entry(name).factory).parameters
    return {k: p.default for k, p in params.items()}


def create_model(name: str, **kwargs: Any) -> SegmentationModel:
    """Build the registered model ``name``. Keyword arguments that are None are ignored (the preset decides).

    The resolved options are stored in ``model.config`` (``{"name": ..., **options}``), which is what a checkpoint
    records to rebuild the network.

    Raises:
        ValueError: unknown model name or unknown keyword argument (the message lists the valid ones).
    """
    options = model_options(name)
    given = {k: v for k, v in kwargs.items() if v is not None}
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(options)}"
        )
    resolved = {**options, **given}
    model = model_entry(name).factory(**resolved)
    model.config = {"name": name, **resolved}
    return model
