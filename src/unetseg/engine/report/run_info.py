"""What the HTML report shows of a training run: the files ``unetseg train`` writes into its run directory
(``config.yaml``, ``recipe.yaml``, ``prediction.yaml``, ``log.csv``), read back as plain values."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...data.io import DataError

#: the files of a run directory the report reads; ``config.yaml`` or ``log.csv`` must be there
RUN_FILES = ("config.yaml", "recipe.yaml", "prediction.yaml", "log.csv")


@dataclass
class RunInfo:
    """The record of one training run.

    Attributes:
        run_dir: the run directory.
        config: ``config.yaml``: section -> {key: value} (the resolved configuration).
        recipe: ``recipe.yaml``: key -> {"value", "reason"} (what the default recipe chose, and why).
        prediction: ``prediction.yaml``: the prediction settings chosen on validation ({} without).
        history: ``log.csv``: one row per epoch, numbers as floats (NaN for an empty cell), ``epoch`` as int.
    """

    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    prediction: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run's name: its folder's name."""
        return self.run_dir.name

    @property
    def monitor(self) -> str:
        """The validation metric that picked the best checkpoint (``train.monitor``)."""
        return str(self.config.get("train", {}).get("monitor") or "foreground_dice")

    def best_row(self) -> dict[str, Any] | None:
        """The log row of the epoch with the highest monitored validation score (the first of equals), or None
        when no epoch has one."""
        key = f"val_{self.monitor}"
        scored = [row for row in self.history if _finite(row.get(key))]
        return max(scored, key=lambda row: row[key]) if scored else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` ({} when it does not exist).

    Raises:
        DataError: the file is not YAML, or holds something other than a mapping.
    """
    if not path.is_file():
        return {}
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a valid YAML file ({err}); expected the file unetseg train wrote") from err
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a mapping of keys to values, got {type(value).__name__}")
    return value


def _number(text: str) -> Any:
    """A CSV cell as a number (NaN for an empty cell), or the text when it is not one."""
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return text


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``log.csv`` (see :func:`unetseg.engine.callbacks.logs.write_log_csv`): numbers as
    floats, an empty cell as NaN, ``epoch`` as int; [] when the file does not exist.

    Raises:
        DataError: a row without an integer epoch.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, raw in enumerate(csv.DictReader(handle), start=2):
            row = {key: _number(value or "") for key, value in raw.items() if key is not None}
            epoch = row.get("epoch")
            if not isinstance(epoch, float) or not epoch.is_integer():
                raise DataError(f"{path}, line {line}: expected an integer epoch, got {raw.get('epoch')!r}")
            row["epoch"] = int(epoch)
            rows.append(row)
    return rows


def read_run(run_dir: str | os.PathLike) -> RunInfo:
    """Read the record of the training run in ``run_dir``.

    Raises:
        DataError: ``run_dir`` is not a folder, holds neither ``config.yaml`` nor ``log.csv``, or one of its files
            cannot be read.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a folder; expected the run directory of unetseg train (e.g. runs/NAME)")
    if not (run_dir / "config.yaml").is_file() and not (run_dir / "log.csv").is_file():
        raise DataError(f"{run_dir}: not a run directory: it has neither config.yaml nor log.csv (expected the "
                        "folder unetseg train writes, e.g. runs/NAME)")
    return RunInfo(run_dir, _read_yaml(run_dir / "config.yaml"), _read_yaml(run_dir / "recipe.yaml"),
                   _read_yaml(run_dir / "prediction.yaml"), read_log(run_dir / "log.csv"))


def run_of_checkpoint(checkpoint: str | os.PathLike) -> Path | None:
    """The run directory a checkpoint belongs to: ``checkpoint`` itself when it is a run directory, else the folder
    of a checkpoint file when it holds the run's ``config.yaml``; None otherwise."""
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / "config.yaml").is_file() else None
