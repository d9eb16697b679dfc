"""unetseg: U-Net image segmentation — train, predict and evaluate from one command line or from Python.

Public API::

    from unetseg import create_model, list_models, train, predict, evaluate, Predictor, Config, Callback

The names are loaded on first use (importing ``unetseg`` alone does not import torch), so the command line starts
quickly and can be interrupted cleanly while it loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> (module, attribute)
_EXPORTS = {
    "Callback": ("unetseg.engine.callbacks", "Callback"),
    "CheckpointError": ("unetseg.checkpoint", "CheckpointError"),
    "Config": ("unetseg.config", "Config"),
    "ConfigError": ("unetseg.config", "ConfigError"),
    "DataError": ("unetseg.data.io", "DataError"),
    "Predictor": ("unetseg.inference.predictor", "Predictor"),
    "TrainResult": ("unetseg.engine.trainer", "TrainResult"),
    "Trainer": ("unetseg.engine.trainer", "Trainer"),
    "TrainingDiverged": ("unetseg.engine.divergence", "TrainingDiverged"),
    "create_model": ("unetseg.models", "create_model"),
    "evaluate": ("unetseg.engine.evaluate", "evaluate_folders"),
    "evaluate_checkpoint": ("unetseg.engine.evaluate", "evaluate_checkpoint"),
    "evaluate_folders": ("unetseg.engine.evaluate", "evaluate_folders"),
    "list_models": ("unetseg.models", "list_models"),
    "load_checkpoint": ("unetseg.checkpoint", "load_checkpoint"),
    "load_config": ("unetseg.config", "load_config"),
    "predict": ("unetseg.inference.files", "predict"),
    "train": ("unetseg.engine.trainer", "train"),
}

__all__ = [
    "Callback", "CheckpointError", "Config", "ConfigError", "DataError", "Predictor", "TrainResult", "Trainer",
    "TrainingDiverged", "create_model", "evaluate", "evaluate_checkpoint", "evaluate_folders", "list_models",
    "load_checkpoint", "load_config", "predict", "train",
]

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .checkpoint import CheckpointError, load_checkpoint
    from .config import Config, ConfigError, load_config
    from .data.io import DataError
    from .engine.callbacks import Callback
    from .engine.divergence import TrainingDiverged
    from .engine.evaluate import evaluate_checkpoint, evaluate_folders
    from .engine.evaluate import evaluate_folders as evaluate
    from .engine.trainer import Trainer, TrainResult, train
    from .inference.files import predict
    from .inference.predictor import Predictor
    from .models import create_model, list_models


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the public API included."""
    return sorted(set(globals()) | set(__all__))
