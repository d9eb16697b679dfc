"""Callbacks of the trainer: what happens around the epochs (checkpoints, logs, TensorBoard, the time budget, a
frozen encoder, the tuning of the prediction settings). A new one is a :class:`Callback` subclass passed to
``train(..., callbacks=[...])``."""

from .base import Callback
from .budget import TimeBudget
from .checkpoints import Checkpoints
from .freeze import FreezeEncoder
from .logs import CsvLog, Curves
from .tensorboard import TensorBoard
from .tuning import TunePrediction

__all__ = ["Callback", "Checkpoints", "CsvLog", "Curves", "FreezeEncoder", "TensorBoard", "TimeBudget",
           "TunePrediction"]
