"""What a training run is made of (:class:`Run`) and where it stands (:class:`TrainState`); the trainer and its
callbacks share both."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader

from ..config import Config
from ..fileio import atomic_write_text
from ..data.patches import PatchDataset
from ..models import SegmentationModel
from .setup import RunData

LAST, BEST = "last.safetensors", "best.safetensors"


@dataclass
class Run:
    """The assembled pieces of a run: the resolved configuration, the data, the network and how it trains."""

    config: Config  # resolved: every setting the recipe chose is filled in
    run_dir: Path
    data: RunData
    model: SegmentationModel
    optimizer: torch.optim.Optimizer
    loss_fn: Any
    dataset: PatchDataset
    loader: DataLoader
    device: torch.device
    precision: str  # fp32 | bf16
    recipe: dict[str, Any]  # key -> {value, reason}
    # the training files as the run started: relative path -> [size, modification time (ns)] (setup.data_fingerprint)
    data_files: dict[str, list[int]] = field(default_factory=dict)
    # a fine-tuning run: where its weights came from (finetune.init_record: path, epoch, re-initialised keys)
    init: dict[str, Any] | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps in one epoch."""
        return len(self.loader)


@dataclass
class TrainState:
    """Where a run stands; a callback may set :attr:`stop` (with a :attr:`stop_reason`) to end it after the
    current epoch."""

    epoch: int = 0  # epochs completed
    total_epochs: int = 0  # epochs planned (re-fitted under a time budget)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -math.inf  # the monitored score of the best epoch (higher is better; loop.is_best)
    best_epoch: int | None = None
    improved: bool = False  # the last epoch set a new best
    start_epoch: int = 0  # the epoch this process started from (> 0 after a resume)
    started: float = field(default_factory=time.perf_counter)  # when this process started the run: train() called
    elapsed_before: float = 0.0  # seconds the run took in the processes before this one (a resume)
    lr_scale: float = 1.0  # the factor of train.lr in force: 0.1 after a divergence was rolled back
    rollbacks: int = 0  # divergences rolled back so far
    divergences: list[str] = field(default_factory=list)  # what diverged, e.g. "loss nan at epoch 3, step 5"
    first_loss: float | None = None  # the loss of the run's first step (the untrained network's)
    # a time budget's measurements and plan (callbacks.budget.TimeBudget); stored in the checkpoints when not empty
    budget: dict[str, Any] = field(default_factory=dict)
    stop: bool = False
    stop_reason: str = ""

    def elapsed(self) -> float:
        """Seconds the run has taken so far: this process's time plus the time of the processes before a resume."""
        return time.perf_counter() - self.started + self.elapsed_before

    def run_state(self) -> dict[str, Any]:
        """What a checkpoint stores so that a resumed run continues where this one is."""
        return {"total_epochs": self.total_epochs, "best_epoch": self.best_epoch, "elapsed": round(self.elapsed(), 3),
                "lr_scale": self.lr_scale, "rollbacks": self.rollbacks, "divergences": list(self.divergences),
                "first_loss": self.first_loss, **({"budget": copy.deepcopy(self.budget)} if self.budget else {})}

    def restore(self, run_state: dict[str, Any], epoch: int, history: list[dict[str, Any]]) -> None:
        """Take up the state a checkpoint stored (:meth:`run_state`) after ``epoch`` epochs with ``history``;
        checkpoints written before a key existed get its value from the history."""
        self.history, self.epoch, self.start_epoch = list(history), epoch, epoch
        self.best_epoch = run_state.get("best_epoch", epoch)
        self.elapsed_before = float(run_state.get("elapsed", sum(row.get("seconds", 0.0) for row in history)))
        self.lr_scale = float(run_state.get("lr_scale", 1.0))
        self.rollbacks = int(run_state.get("rollbacks", 0))
        self.divergences = list(run_state.get("divergences", []))
        self.budget = copy.deepcopy(run_state.get("budget", {}))
        first = run_state.get("first_loss")
        self.first_loss = float(first) if first is not None else (history[0]["train_loss"] if history else None)


def save_recipe(run_dir: Path, recipe: dict[str, Any]) -> None:
    """Write the recipe's choices to ``run_dir / "recipe.yaml"`` (atomically), in the order they were made."""
    atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe, sort_keys=False))
