"""``unetseg evaluate``: metrics tables per image and over the dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ConfigError, EvaluateConfig
from ..engine.evaluate import evaluate_checkpoint, evaluate_folders, format_report, write_report
from ..engine.report import check_images, folder_images, kept_images, run_of_checkpoint, write_html_report
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (EvaluateConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand with a flag for every field of :class:`EvaluateConfig`."""
    p = sub.add_parser("evaluate", help="score predictions against masks",
                       description="Either --pred DIR --truth DIR, or --checkpoint CKPT --data DIR.")
    add_arguments(p, *OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Score, print and write the report; returns 0.

    Raises:
        ConfigError: neither --pred with --truth nor --checkpoint with --data.
    """
    o = options_from_args(args, EvaluateConfig)
    kept: list = []
    if o.pred and o.truth and not o.checkpoint:
        if o.report:
            check_images(o.truth, o.images)  # before scoring: the report needs the images
        report = evaluate_folders(o.pred, o.truth, o.num_classes, instances=o.instances,
                                  truth_instances=o.truth_instances, ignore_index=o.ignore_index)
        json_path = Path(o.json or Path(o.pred) / "metrics.json")
    elif o.checkpoint and o.data and not o.pred:
        report = evaluate_checkpoint(o.checkpoint, o.data, o.device, instances=o.instances,
                                     truth_instances=o.truth_instances, ignore_index=o.ignore_index,
                                     kept=kept if o.report else None)
        json_path = Path(o.json or "metrics.json")
    else:
        raise ConfigError("give either --pred DIR --truth DIR, or --checkpoint CKPT --data DIR")
    print(format_report(report))
    write_report(report, json_path)
    print(f"metrics written to {json_path}")
    if o.report:
        _write_html(o, report, kept)
    return 0


def _write_html(o: EvaluateConfig, report: dict, kept: list) -> None:
    """Write the HTML report of ``unetseg evaluate --report``: the evaluation, its images and, for a checkpoint
    of a run directory, the run."""
    objects = "instances" in report
    if o.checkpoint:
        images = kept_images(kept, objects, o.truth_instances, o.ignore_index)
        run_dir = run_of_checkpoint(o.checkpoint)
    else:
        images = folder_images(o.pred, o.truth, report["num_classes"], o.images, o.ignore_index, objects,
                               o.truth_instances)
        run_dir = None
    path = write_html_report(o.report, run_dir, report, images, o.ignore_index)
    print(f"report written to {path.resolve().as_uri()} ({path.stat().st_size / 2**20:.1f} MiB)")
