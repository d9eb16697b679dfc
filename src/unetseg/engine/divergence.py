"""Training that diverges: how a diverged epoch is recognised, the state it is rolled back to, and the error of a
run that diverged again after its learning rate was lowered.

An epoch has diverged when one of its steps gives a non-finite loss or gradient norm, when the weights are not
finite after it (:func:`unetseg.engine.loop.train_steps` raises :class:`Divergence`), or when its mean training
loss explodes (:func:`explosion`). The trainer then rolls the run back once to the state at the end of the last
good epoch (:class:`Snapshot`) with a tenth of the learning rate; a second divergence raises
:class:`TrainingDiverged`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ConfigError
from ..optim import load_optimizer_state
from .state import Run

#: an epoch whose mean training loss is more than this many times the untrained network's loss has diverged
EXPLOSION_FACTOR = 10.0

#: how many divergences a run rolls back before it stops
MAX_ROLLBACKS = 1

#: the factor the learning rate is multiplied by at a rollback
LR_FACTOR = 0.1


class TrainingDiverged(ConfigError):
    """Training diverged again after the learning rate was lowered; the message says where, names the last good
    checkpoint and what to do (a lower ``--lr``). A :class:`~unetseg.config.ConfigError`: the learning rate is the
    user's to change."""


class Divergence(Exception):
    """Raised inside the trainer when the epoch being trained diverged.

    Args:
        what: how, e.g. ``"loss nan"`` or ``"gradient norm inf"``.
        step: the step of the epoch (1-based), or None when the whole epoch is judged (its mean loss).
        detail: what the value was compared with, if anything.
    """

    def __init__(self, what: str, step: int | None = None, detail: str = "") -> None:
        super().__init__(what if step is None else f"{what} at step {step}")
        self.what, self.step, self.detail = what, step, detail

    def where(self, epoch: int) -> str:
        """``"loss nan at epoch 3, step 5"`` for the (1-based) ``epoch``, with the detail after a comma."""
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.what} at epoch {epoch}{step}" + (f", {self.detail}" if self.detail else "")


def explosion(mean_loss: float, first_loss: float | None, previous_mean: float | None) -> Divergence | None:
    """The divergence of an epoch with mean training loss ``mean_loss``, or None when it has not diverged.

    The rule: the mean is above :data:`EXPLOSION_FACTOR` (10) times ``first_loss``, the loss of the run's first
    step (the untrained network's), and it rises (above ``previous_mean``, the previous epoch's mean; the first
    epoch has none).

    Example:
        >>> explosion(0.8, 1.0, 0.9) is None
        True
        >>> print(explosion(1e11, 1.0, None).where(1))
        mean training loss 1e+11 at epoch 1, over 10x the untrained network's loss 1
    """
    # Why this never fires on a normal run: training only lowers the loss below the untrained network's. The epoch
    # mean of a healthy run stays below it or near it (on the synthetic nuclei at lr 1e-2 to 1: epoch means
    # 0.3-1.2 for a first loss of 1.04; batch-to-batch spread, weight maps included, is a factor of 2-3), so a mean
    # ten times higher means the updates threw the weights far from anything the data supports (lr 10: 70,
    # lr 100: 7.9e3, lr 1e6: 5e11). Requiring it to rise as well lets a run that is coming back down continue. A
    # loss that is not positive at the start gives no scale to compare with: then only non-finite values count.
    if first_loss is None or not first_loss > 0:
        return None
    if mean_loss > EXPLOSION_FACTOR * first_loss and (previous_mean is None or mean_loss > previous_mean):
        return Divergence(f"mean training loss {mean_loss:.3g}",
                          detail=f"over {EXPLOSION_FACTOR:g}x the untrained network's loss {first_loss:.3g}")
    return None


def _to_cpu(value: Any) -> Any:
    """A copy of ``value`` with every tensor copied to the CPU (dicts and lists walked)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return copy.deepcopy(value)


@dataclass
class Snapshot:
    """The weights, optimizer state and random state of a run at one moment, copied to the CPU (what a diverged
    epoch is rolled back to)."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: torch.Tensor | None

    @classmethod
    def take(cls, run: Run) -> "Snapshot":
        """The state of ``run`` now."""
        cuda = torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None
        return cls(_to_cpu(run.model.state_dict()), _to_cpu(run.optimizer.state_dict()), torch.get_rng_state(), cuda)

    def restore(self, run: Run) -> None:
        """Put ``run`` back into this state (the snapshot stays as it is, so it can be restored again)."""
        run.model.load_state_dict(self.model)
        load_optimizer_state(run.optimizer, _to_cpu(self.optimizer))
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, run.device)
