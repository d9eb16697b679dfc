"""Segmentation networks and their registry."""

from . import presets as _presets  # noqa: F401  (registers the presets)
from .base import SegmentationModel
from .registry import ModelEntry, create_model, list_models, model_entry, model_options, register_model
from .unet import UNet

__all__ = [
    "ModelEntry",
    "SegmentationModel",
    "UNet",
    "create_model",
    "list_models",
    "model_entry",
    "model_options",
    "register_model",
]
