"""``unetseg train``: train a network on a folder dataset."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Config, ConfigError, DataConfig, ModelConfig, TrainCommandConfig, TrainConfig
from ..distributed import rank_and_world
from ..engine.preview import preview_augmentations
from ..engine.trainer import train
from .options import add_arguments, config_from_args, options_from_args, read_arguments

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (TrainCommandConfig, DataConfig, ModelConfig, TrainConfig)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand with a flag for every field of :data:`OPTIONS`."""
    p = sub.add_parser("train", help="train a network on DATA/images + DATA/masks",
                       description="Train a segmentation network. Options override the --config file.")
    add_arguments(p, *OPTIONS)


def resume_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run options given on the command line, as ``{"section.key": value}`` (``{"train.lr": 1e-4,
    "data.train": "X"}``), for a resumed run; ``train.epochs`` is left out (``train()`` takes it on its own). A
    ``KEY=VALUE`` option gives the mapping of the pairs given."""
    overrides = {f"{section}.{key}": value for section, section_type in Config.section_types().items()
                 for key, value in read_arguments(args, section_type).items()}
    overrides.pop("train.epochs", None)
    return overrides


def run(args: argparse.Namespace) -> int:
    """Train (or resume, or only write the augmentation preview); returns 0."""
    command = options_from_args(args, TrainCommandConfig)
    if command.resume:
        if command.config:
            raise ConfigError(f"--config {command.config} cannot be used with --resume {command.resume}: a resumed "
                              "run keeps the configuration stored in its last.safetensors; give only the options "
                              "to change as flags (e.g. --lr 1e-4)")
        epochs = read_arguments(args, TrainConfig).get("epochs")
        result = train(resume=command.resume, epochs=epochs, overrides=resume_overrides(args),
                       progress=command.progress)
    elif command.show_augmentations:
        preview_augmentations(config_from_args(args), command.show_augmentations)
        print(f"augmented training patches written to {command.show_augmentations}")
        return 0
    else:
        result = train(config_from_args(args), progress=command.progress)
    if rank_and_world()[0] == 0:  # under torchrun, rank 0 speaks for the run
        print(f"run directory: {result.run_dir}")
        print(f"best checkpoint: {result.best_checkpoint}")
    return 0
