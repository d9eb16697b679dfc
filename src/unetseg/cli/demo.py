"""``unetseg demo``: the built-in default job on synthetic nuclei."""

from __future__ import annotations

import argparse
from pathlib import Path

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


def overlay_links(predictions: Path, shown: int = 3) -> list[str]:
    """``file://`` links to the first ``shown`` overlays of the predictions folder, then how many more there are."""
    overlays = sorted(predictions.glob("*_overlay.png"))
    links = [path.resolve().as_uri() for path in overlays[:shown]]
    if len(overlays) > shown:
        links.append(f"... and {len(overlays) - shown} more overlays in {predictions}")
    return links


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its results are; returns 0."""
    o = options_from_args(args, DemoConfig)
    result = run_demo(o.workdir, epochs=o.epochs, progress=o.progress)
    dataset = result.report["dataset"]
    print(f"\ndemo finished in {result.seconds:.0f} s")
    print(f"  run directory : {result.run_dir}  (log.csv, curves.png, best/last checkpoints)")
    print(f"  predictions   : {result.predictions}  (label PNGs and overlays)")
    for overlay in overlay_links(result.predictions):
        print(f"                  {overlay}")
    print(f"  metrics       : {result.metrics_file}")
    if result.report_file is not None:
        print(f"  report        : {result.report_file.resolve().as_uri()}  (open it in a browser)")
    print(f"  held-out foreground Dice {dataset['foreground_dice']:.4f}, IoU {dataset['foreground_iou']:.4f}, "
          f"pixel accuracy {dataset['pixel_accuracy']:.4f}")
    objects = result.report.get("instances")
    if objects:
        print(f"  held-out objects: DSB score (AP 0.5:0.95) {objects['dsb_score']:.4f}, pooled F1@0.5 "
              f"{objects['dataset_f1_50']:.4f}")
    return 0
