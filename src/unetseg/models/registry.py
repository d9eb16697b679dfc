"""The registry of named network presets: ``create_model(name, **kwargs)`` and ``list_models()``.

A preset is a factory function registered with :func:`register_model`; its keyword arguments, with their defaults,
are the options of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry
from .base import SegmentationModel

MODELS: Registry[SegmentationModel] = Registry("model", sort=True)
"""Every registered preset, listed by name in alphabetical order; info: ``description`` and ``paper``."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered preset: its factory, a one-line description and the paper it comes from."""

    name: str
    factory: Callable[..., SegmentationModel]
    description: str
    paper: str


def register_model(name: str, description: str, paper: str) -> Callable:
    """Decorator registering a factory function under ``name``; its keyword arguments are the preset's options.

    Raises:
        ValueError: ``name`` is already registered.
    """
    return MODELS.register(name, description=description, paper=paper)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return MODELS.names()


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    entry = MODELS.get(name)
    return ModelEntry(entry.name, entry.factory, entry.description, str(entry.info.get("paper", "")))


def model_options(name: str) -> dict[str, Any]:
    """The keyword arguments the preset ``name`` accepts, with their defaults."""
    return MODELS.options(name)


def create_model(name: str, **kwargs: Any) -> SegmentationModel:
    """Build the registered model ``name``. Keyword arguments that are None are ignored (the preset decides).

    The resolved options are stored in ``model.config`` (``{"name": ..., **options}``), which is what a checkpoint
    records to rebuild the network.

    Raises:
        ValueError: unknown model name or unknown keyword argument (the message lists the valid ones).
    """
    given = {k: v for k, v in kwargs.items() if v is not None}
    MODELS.check_options(name, given)
    resolved = {**model_options(name), **given}
    model = MODELS.build(name, **resolved)
    model.config = {"name": name, **resolved}
    return model
