"""``unetseg train``: train a network on a folder dataset."""

from __future__ import annotations

import argparse

from ..config import DataConfig, ModelConfig, TrainCommandConfig, TrainConfig
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


def run(args: argparse.Namespace) -> int:
    """Train (or resume, or only write the augmentation preview); returns 0."""
    command = options_from_args(args, TrainCommandConfig)
    if command.resume:
        epochs = read_arguments(args, TrainConfig).get("epochs")
        result = train(resume=command.resume, epochs=epochs, progress=command.progress)
    elif command.show_augmentations:
        preview_augmentations(config_from_args(args), command.show_augmentations)
        print(f"augmented training patches written to {command.show_augmentations}")
        return 0
    else:
        result = train(config_from_args(args), progress=command.progress)
    print(f"run directory: {result.run_dir}")
    print(f"best checkpoint: {result.best_checkpoint}")
    return 0
