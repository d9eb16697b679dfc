"""``unetseg demo``: the whole pipeline on built-in synthetic nuclei, in a few minutes on a laptop CPU."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..data.synthetic import write_synthetic_dataset
from .trainer import train
from .evaluate import evaluate_folders, format_report, write_report
from .report import folder_images, write_html_report
from ..inference.files import predict

log = logging.getLogger("unetseg")


@dataclass
class DemoResult:
    """Where the demo put its outputs (the HTML report of the run and the held-out images too), and the held-out
    metrics."""

    workdir: Path
    run_dir: Path
    predictions: Path
    metrics_file: Path
    report: dict[str, Any]
    seconds: float
    report_file: Path | None = None


def demo_config(workdir: Path, epochs: int = 12) -> Config:
    """The demo's training configuration: a small same-padding U-Net with batch norm on 128x128 images."""
    config = Config()
    config.model.name, config.model.base_channels, config.model.depth = "unet_bn", 16, 3
    config.data.train, config.data.val_fraction = str(workdir / "data" / "train"), 0.15
    tc = config.train
    tc.epochs, tc.batch_size, tc.patch_size, tc.samples_per_epoch, tc.lr = epochs, 8, 96, 160, 3e-3
    tc.output_dir, tc.name = str(workdir / "runs"), "demo"
    return config


def run_demo(workdir: str | os.PathLike = "demo_output", epochs: int = 12, n_train: int = 40, n_test: int = 10,
             progress: bool = True) -> DemoResult:
    """Generate synthetic data, train, predict on held-out images (with overlays), evaluate them (pixels and
    objects) and write the HTML report of the run and the evaluation, ``workdir/report.html``.

    ``workdir`` is replaced if it holds an earlier demo (``workdir/runs/demo``); other existing content is kept.
    """
    started = time.perf_counter()
    workdir = Path(workdir)
    if (workdir / "runs" / "demo").exists():
        shutil.rmtree(workdir / "runs" / "demo")
    write_synthetic_dataset(workdir / "data" / "train", n_train, seed=0, prefix="train")
    write_synthetic_dataset(workdir / "data" / "test", n_test, seed=1, prefix="test")
    result = train(demo_config(workdir, epochs), progress=progress)
    predictions = workdir / "predictions"
    predict(result.best_checkpoint, [workdir / "data" / "test" / "images"], predictions, overlays=True, overwrite=True)
    test = workdir / "data" / "test"
    report = evaluate_folders(predictions, test, truth_instances=test / "labels")
    metrics_file = workdir / "test_metrics.json"
    write_report(report, metrics_file)
    log.info("%s", format_report(report))
    images = folder_images(predictions, test, report["num_classes"], truth_instances=test / "labels")
    html = write_html_report(workdir / "report.html", result.run_dir, report, images)
    return DemoResult(workdir, result.run_dir, predictions, metrics_file, report, time.perf_counter() - started,
                      html)
