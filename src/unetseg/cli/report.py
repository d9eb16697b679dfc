"""``unetseg report``: the HTML report of a training run and its evaluation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..config.commands import ReportConfig
from ..data.io import DataError
from ..engine.evaluate import evaluate_folders
from ..engine.report import check_images, folder_images, write_html_report
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (ReportConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand with an argument for every field of :class:`ReportConfig`."""
    p = sub.add_parser("report", help="write the HTML report of a run and its evaluation",
                       description="One self-contained HTML file (opens from disk, loads nothing): the recipe and "
                                   "its reasons, the learning curves, the validation and test metrics, a per-image "
                                   "table to sort and filter, each image with its truth, prediction and error map "
                                   "(worst first), and the configuration. Give --eval METRICS_JSON for the test "
                                   "metrics, and --pred DIR --truth DIR for the pictures.")
    add_arguments(p, *OPTIONS)


def read_metrics(path: str) -> dict[str, Any]:
    """The JSON report of ``unetseg evaluate`` in ``path``.

    Raises:
        DataError: the file is not JSON, or not such a report.
    """
    try:
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a JSON file ({err}); expected the metrics unetseg evaluate writes") from err
    if not isinstance(metrics, dict) or not isinstance(metrics.get("per_image"), dict) or "num_classes" not in metrics:
        raise DataError(f"{path}: not a report of unetseg evaluate (expected the keys num_classes and per_image)")
    return metrics


def true_objects_folder(o: ReportConfig, metrics: dict[str, Any] | None) -> str | None:
    """The folder of true instance labels: --truth-instances, else the folder the evaluation scored objects
    against (its ``truth_source``, when that is a folder)."""
    if o.truth_instances is not None:
        return o.truth_instances
    source = ((metrics or {}).get("instances") or {}).get("truth_source")
    return source if source and Path(source).is_dir() else None


def run(args: argparse.Namespace) -> int:
    """Write the report; returns 0.

    Raises:
        ConfigError: --pred without --truth, or the reverse.
    """
    o = options_from_args(args, ReportConfig)
    if (o.pred is None) != (o.truth is None):
        raise ConfigError("give --pred DIR and --truth DIR together (the predictions and the true masks), or "
                          "neither")
    metrics = read_metrics(o.eval) if o.eval else None
    images = ()
    if o.pred is not None:
        check_images(o.truth, o.images)  # fails before anything is scored when the images are missing
        if metrics is None:
            metrics = evaluate_folders(o.pred, o.truth, instances=o.truth_instances is not None,
                                       truth_instances=o.truth_instances, ignore_index=o.ignore_index)
        objects = true_objects_folder(o, metrics)
        images = folder_images(o.pred, o.truth, metrics["num_classes"], o.images, o.ignore_index,
                               instances="instances" in metrics or objects is not None, truth_instances=objects)
    path = write_html_report(o.output, o.run_dir, metrics, images, o.ignore_index, o.thumbnail)
    print(f"report written to {path.resolve().as_uri()} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
