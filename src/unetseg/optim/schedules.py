"""Learning-rate schedules as pure functions of the step (:func:`lr_at`), so resuming needs nothing but the step
number; under a time budget, of the fraction of the training time spent (:func:`lr_at_fraction`).

A schedule is registered in :data:`SCHEDULES` as a function of the fraction ``t`` in [0, 1] of the post-warm-up
steps (or training time) already taken, returning the factor of the base learning rate.
"""

from __future__ import annotations

import math

from ..registry import Registry, RegistryError

SCHEDULES: Registry[float] = Registry("schedule")


@SCHEDULES.register("cosine", description="cosine annealing to 0")
def cosine(t: float) -> float:
    """``(1 + cos(pi * t)) / 2``."""
    return 0.5 * (1.0 + math.cos(math.pi * t))


@SCHEDULES.register("poly", description="polynomial decay (nnU-Net's)")
def poly(t: float) -> float:
    """``(1 - t) ** 0.9``."""
    return (1.0 - t) ** 0.9


@SCHEDULES.register("constant", description="no decay")
def constant(t: float) -> float:
    """``1``."""
    return 1.0


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str = "cosine", warmup_steps: int = 0) -> float:
    """Learning rate for optimisation step ``step`` (0-based) of ``total_steps``.

    - linear warm-up from ``base_lr / warmup_steps`` to ``base_lr`` over the first ``warmup_steps`` steps, then
    - ``cosine``: ``base_lr * (1 + cos(pi * t)) / 2``; ``poly``: ``base_lr * (1 - t) ** 0.9`` (nnU-Net's);
      ``constant``: ``base_lr``; where ``t`` is the fraction of the post-warm-up steps already taken.

    Raises:
        RegistryError: (a ValueError) ``schedule`` is not in :data:`SCHEDULES`; the message lists the names.

    Example:
        >>> lr_at(0, 100, 1.0, "cosine"), lr_at(50, 100, 1.0, "cosine")
        (1.0, 0.5)
    """
    span = max(total_steps - warmup_steps, 1)
    return _scheduled(base_lr, schedule, step, warmup_steps, min(max(step - warmup_steps, 0) / span, 1.0))


def lr_at_fraction(fraction: float, base_lr: float, schedule: str = "cosine", step: int = 0, warmup_steps: int = 0,
                   warmup_end: float = 0.0) -> float:
    """Learning rate of a run with a time budget, when ``fraction`` of its training time is spent (0 when training
    starts, 1 when the budget's training share runs out), so that the rate reaches the schedule's end when the
    time does.

    - linear warm-up as in :func:`lr_at` while the run's optimisation step ``step`` (0-based) is below
      ``warmup_steps``, then
    - the schedule's factor at ``t = (fraction - warmup_end) / (1 - warmup_end)``, clamped to [0, 1], where
      ``warmup_end`` is the fraction spent when the warm-up ended (0 without one).

    Raises:
        RegistryError: (a ValueError) ``schedule`` is not in :data:`SCHEDULES`; the message lists the names.

    Example:
        >>> lr_at_fraction(0.0, 1.0), lr_at_fraction(0.5, 1.0), lr_at_fraction(1.2, 1.0)
        (1.0, 0.5, 0.0)
        >>> lr_at_fraction(0.75, 1.0, "cosine", step=10, warmup_steps=4, warmup_end=0.5)
        0.5
    """
    t = min(max((fraction - warmup_end) / max(1.0 - warmup_end, 1e-12), 0.0), 1.0)
    return _scheduled(base_lr, schedule, step, warmup_steps, t)


def _scheduled(base_lr: float, schedule: str, step: int, warmup_steps: int, t: float) -> float:
    """The linear warm-up while ``step`` < ``warmup_steps``, else ``base_lr`` times the schedule's factor at the
    fraction ``t`` of the schedule done. RegistryError for an unknown ``schedule``."""
    if schedule not in SCHEDULES:
        raise RegistryError(f"schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    # the factors are exact rescalings of the old closed forms (x * 0.5 and x * 1.0 round exactly), so the
    # values are bit-identical to base_lr * 0.5 * (1 + cos), base_lr * (1 - t) ** 0.9 and base_lr
    return base_lr * SCHEDULES.get(schedule).factory(t)
