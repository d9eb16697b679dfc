"""What a training run is made of (:class:`Run`) and where it stands (:class:`TrainState`); the trainer and its
callbacks share both."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..config import Config
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
    best_score: float = -math.inf  # the best monitored score so far (higher is better)
    best_epoch: int | None = None
    improved: bool = False  # the last epoch set a new best
    start_epoch: int = 0  # the epoch this process started from (> 0 after a resume)
    started: float = field(default_factory=time.perf_counter)  # when this process started the run
    stop: bool = False
    stop_reason: str = ""

    def elapsed(self) -> float:
        """Seconds the run has taken so far: this process's time plus the epochs done before a resume."""
        before = sum(row["seconds"] for row in self.history[: self.start_epoch])
        return time.perf_counter() - self.started + before

    def run_state(self) -> dict[str, Any]:
        """What a checkpoint stores so that a resumed run continues where this one is."""
        return {"total_epochs": self.total_epochs, "best_epoch": self.best_epoch}
