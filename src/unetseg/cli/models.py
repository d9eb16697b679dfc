"""``unetseg models``: the registered networks with their size, compute and options."""

from __future__ import annotations

import argparse

from ..models.registry import list_models
from ..models.summary import models_table, summarize


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered networks",
                       description="Parameters and forward GFLOPs (1 input channel, 2 classes, default options) "
                                   "to segment one image, accepted input sizes, description and paper.")
    p.add_argument("--image-size", type=int, default=512, help="image side for the GFLOPs column (default 512)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--options", action="store_true", help="also list each model's options and defaults")


def run(args: argparse.Namespace) -> int:
    print(models_table(args.image_size, markdown=args.markdown))
    if args.options:
        print()
        for name in list_models():
            options = summarize(name, args.image_size).options
            print(f"{name}: " + ", ".join(f"{k}={v!r}" for k, v in options.items()))
    return 0
