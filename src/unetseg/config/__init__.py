"""The configuration: every option of a run and of each subcommand, with its type, default, help text, choices,
bounds and command-line flag in one field declaration.

- :mod:`.sections`: the run sections ``ModelConfig``, ``DataConfig``, ``TrainConfig``; :mod:`.run`: ``Config``
  (all three) with YAML in and out;
- :mod:`.commands`: the further options of each subcommand (``PredictConfig``, ...);
- :mod:`.options`: the field metadata (:func:`option`) and the checks it drives; :mod:`.choices`: the accepted
  values, from the registries; :mod:`.validate`: :func:`validate` and :func:`validate_predict`.
"""

from .choices import MONITORS
from .commands import (DemoConfig, EvaluateConfig, ExportConfig, InspectConfig, ListModelsConfig, PredictConfig,
                       TrainCommandConfig)
from .errors import ConfigError
from .options import Option, check_fields, check_value, flags_of, option, option_of
from .run import Config, load_config, save_config
from .sections import DataConfig, ModelConfig, TrainConfig
from .typecheck import build_section, field_types
from .validate import validate, validate_predict

__all__ = [
    "MONITORS", "Config", "ConfigError", "DataConfig", "DemoConfig", "EvaluateConfig", "ExportConfig",
    "InspectConfig", "ListModelsConfig", "ModelConfig", "Option", "PredictConfig", "TrainCommandConfig",
    "TrainConfig", "build_section", "check_fields", "check_value", "field_types", "flags_of", "load_config",
    "option", "option_of", "save_config", "validate", "validate_predict",
]
