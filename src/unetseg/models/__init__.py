"""Segmentation networks and their registry.

Every module in this package that registers a model (``@register_model``) is imported here automatically, so adding
a network takes one new file with its class and its registration.
"""

import importlib
import pkgutil

from .base import SegmentationModel
from .registry import MODELS, ModelEntry, create_model, list_models, model_entry, model_options, register_model
from .unet import UNet

_INFRASTRUCTURE = {"base", "blocks", "registry"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "MODELS",
    "ModelEntry",
    "SegmentationModel",
    "UNet",
    "create_model",
    "list_models",
    "model_entry",
    "model_options",
    "register_model",
]
