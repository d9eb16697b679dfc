"""Optimizers and learning-rate schedules, each a registry (:mod:`.optimizers`, :mod:`.schedules`)."""

from .optimizers import OPTIMIZERS, build_optimizer, load_optimizer_state, match_parameter_layout
from .schedules import SCHEDULES, lr_at

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "load_optimizer_state", "lr_at",
           "match_parameter_layout"]
