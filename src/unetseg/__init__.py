"""unetseg: U-Net image segmentation — train, predict and evaluate from one command line or from Python.

Public API::

    from unetseg import create_model, list_models, train, predict, evaluate, Predictor, Config, Callback
"""

__version__ = "0.1.0"

from .config import Config, ConfigError, load_config  # noqa: E402
from .data.io import DataError  # noqa: E402
from .checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from .engine.callbacks import Callback  # noqa: E402
from .engine.trainer import Trainer, TrainResult, train  # noqa: E402
from .engine.evaluate import evaluate_checkpoint, evaluate_folders  # noqa: E402
from .engine.evaluate import evaluate_folders as evaluate  # noqa: E402
from .inference.predictor import Predictor  # noqa: E402
from .models import create_model, list_models  # noqa: E402
from .inference.files import predict  # noqa: E402

__all__ = [
    "Callback", "CheckpointError", "Config", "ConfigError", "DataError", "Predictor", "TrainResult", "create_model", "evaluate",
    "evaluate_checkpoint", "evaluate_folders", "list_models", "load_checkpoint", "load_config", "predict", "train", "Trainer",
]
