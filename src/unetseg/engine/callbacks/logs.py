"""Per-epoch records: ``log.csv`` (one row per epoch) and ``curves.png`` (loss and metric curves), each written
after every epoch by a callback."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from ...fileio import atomic_path, atomic_write_text
from ..state import Run, TrainState
from .base import Callback


def write_log_csv(path: str | os.PathLike, history: list[dict[str, Any]]) -> None:
    """Write all epochs of ``history`` as CSV, atomically (the whole file is rewritten, so a resumed run's log
    holds exactly its epochs). Columns: the union of the rows' keys, in first-seen order."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def plot_curves(path: str | os.PathLike, history: list[dict[str, Any]]) -> None:
    """Save a PNG with the training/validation loss (left) and the validation metrics (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        values = [row.get(key, math.nan) for row in history]
        if any(not math.isnan(v) for v in values):
            ax_loss.plot(epochs, values, marker=".", label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    metric_keys = ("val_foreground_dice", "val_mean_iou", "val_pixel_accuracy")
    for key in metric_keys:
        values = [row.get(key, math.nan) for row in history]
        if any(not math.isnan(v) for v in values):
            ax_metric.plot(epochs, values, marker=".", label=key.removeprefix("val_").replace("_", " "))
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("validation metric")
    ax_metric.set_ylim(0, 1)
    if ax_metric.lines:
        ax_metric.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class CsvLog(Callback):
    """Rewrites ``log.csv`` with every epoch after each epoch."""

    rank_zero_only = True

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        write_log_csv(run.run_dir / "log.csv", state.history)


class Curves(Callback):
    """Redraws ``curves.png`` after each epoch."""

    rank_zero_only = True

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        plot_curves(run.run_dir / "curves.png", state.history)
