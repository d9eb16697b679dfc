"""``unetseg demo``: the built-in default job on synthetic nuclei."""

from __future__ import annotations

import argparse

from ..engine.demo import run_demo


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate synthetic nuclei, train, predict, evaluate",
                       description="The whole pipeline on built-in synthetic microscopy data (a few CPU minutes).")
    p.add_argument("--workdir", default="demo_output", help="where data, run, predictions and metrics go")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    result = run_demo(args.workdir, epochs=args.epochs, progress=not args.no_progress)
    dataset = result.report["dataset"]
    print(f"\ndemo finished in {result.seconds:.0f} s")
    print(f"  run directory : {result.run_dir}  (log.csv, curves.png, best/last checkpoints)")
    print(f"  predictions   : {result.predictions}  (label PNGs and overlays)")
    print(f"  metrics       : {result.metrics_file}")
    print(f"  held-out foreground Dice {dataset['foreground_dice']:.4f}, IoU {dataset['foreground_iou']:.4f}, "
          f"pixel accuracy {dataset['pixel_accuracy']:.4f}")
    return 0
