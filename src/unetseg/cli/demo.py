"""``unetseg demo``: the built-in default job on synthetic nuclei."""

from __future__ import annotations

import argparse

from ..config import DemoConfig
from ..engine.demo import run_demo
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (DemoConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand with a flag for every field of :class:`DemoConfig`."""
    p = sub.add_parser("demo", help="generate synthetic nuclei, train, predict, evaluate",
                       description="The whole pipeline on built-in synthetic microscopy data (a few CPU minutes).")
    add_arguments(p, *OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its results are; returns 0."""
    o = options_from_args(args, DemoConfig)
    result = run_demo(o.workdir, epochs=o.epochs, progress=o.progress)
    dataset = result.report["dataset"]
    print(f"\ndemo finished in {result.seconds:.0f} s")
    print(f"  run directory : {result.run_dir}  (log.csv, curves.png, best/last checkpoints)")
    print(f"  predictions   : {result.predictions}  (label PNGs and overlays)")
    print(f"  metrics       : {result.metrics_file}")
    print(f"  held-out foreground Dice {dataset['foreground_dice']:.4f}, IoU {dataset['foreground_iou']:.4f}, "
          f"pixel accuracy {dataset['pixel_accuracy']:.4f}")
    return 0
