"""``unetseg models``: the registered networks with their size, compute and options."""

from __future__ import annotations

import argparse

from ..config import ListModelsConfig
from ..models.registry import list_models
from ..models.summary import models_table, summarize
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (ListModelsConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand with a flag for every field of :class:`ListModelsConfig`."""
    p = sub.add_parser("models", help="list the registered networks",
                       description="Parameters and forward GFLOPs (1 input channel, 2 classes, default options) "
                                   "to segment one image, accepted input sizes, description and paper.")
    add_arguments(p, *OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Print the table (and the options of each model); returns 0."""
    o = options_from_args(args, ListModelsConfig)
    print(models_table(o.image_size, markdown=o.markdown))
    if o.options:
        print()
        for name in list_models():
            options = summarize(name, o.image_size).options
            print(f"{name}: " + ", ".join(f"{k}={v!r}" for k, v in options.items()))
    return 0
