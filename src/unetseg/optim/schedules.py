"""Learning-rate schedules as pure functions of the step, so resuming needs nothing but the step number."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "poly", "constant")


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str = "cosine", warmup_steps: int = 0) -> float:
    """Learning rate for optimisation step ``step`` (0-based) of ``total_steps``.

    - linear warm-up from ``base_lr / warmup_steps`` to ``base_lr`` over the first ``warmup_steps`` steps, then
    - ``cosine``: ``base_lr * (1 + cos(pi * t)) / 2``; ``poly``: ``base_lr * (1 - t) ** 0.9`` (nnU-Net's);
      ``constant``: ``base_lr``; where ``t`` is the fraction of the post-warm-up steps already taken.

    Example:
        >>> lr_at(0, 100, 1.0, "cosine"), lr_at(50, 100, 1.0, "cosine")
        (1.0, 0.5)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / span, 1.0)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "poly":
        return base_lr * (1.0 - t) ** 0.9
    return base_lr
