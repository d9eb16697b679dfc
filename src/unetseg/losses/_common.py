"""Checks and reductions shared by the losses of this package (private helpers).

Conventions: ``logits`` is (N, C, H, W) (any number of trailing spatial dimensions works), ``target`` (N, H, W)
holds integer class indices (a floating target is truncated with ``.long()``), ``weight_map`` is an optional float
(N, H, W). C == 1 is the binary form with two classes (0 background, 1 foreground); C >= 2 has C classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def num_classes_of(logits: torch.Tensor) -> int:
    """The number of classes the head predicts: 2 for a one-channel (binary) head, C otherwise."""
    if logits.ndim < 3:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    return 2 if logits.shape[1] == 1 else int(logits.shape[1])


def prepare(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None, weight_map: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the shapes and the labels; return ``(target, valid)``.

    ``target`` is a long copy in which ignored pixels are set to 0 (so it can index and one-hot safely) and
    ``valid`` the boolean mask (N, H, W) of the counted pixels.

    Raises:
        ValueError: mismatched shapes, or a counted pixel whose label is not in [0, number of classes).
    """
    k = num_classes_of(logits)
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target must have shape {expected} for logits of shape {tuple(logits.shape)}, "
                         f"got {tuple(target.shape)}")
    if weight_map is not None and tuple(weight_map.shape) != expected:
        raise ValueError(f"weight_map must have the target's shape {expected}, got {tuple(weight_map.shape)}")
    target = target.long()
    if ignore_index is None:
        valid = torch.ones_like(target, dtype=torch.bool)
    else:
        valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= k))
    if bool(bad.any()):
        raise ValueError(f"target holds label {int(target[bad][0])}, outside [0, {k}) for a head with "
                         f"{logits.shape[1]} channel(s)" + ("" if ignore_index is None else
                                                             f" (ignore_index={ignore_index})"))
    return torch.where(valid, target, torch.zeros_like(target)), valid


def pixel_mean(
    per_pixel: torch.Tensor,
    valid: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    normalizer: torch.Tensor | None = None,
) -> torch.Tensor:
    """``sum(weight_map * per_pixel over counted pixels) / normalizer``.

    ``normalizer`` defaults to the number of counted pixels; a zero normalizer (nothing counted) gives 0.
    """
    if weight_map is not None:
        per_pixel = per_pixel * weight_map.to(per_pixel.dtype)
    total = torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum()
    if normalizer is None:
        normalizer = valid.sum().to(per_pixel.dtype)
    return total / torch.where(normalizer > 0, normalizer, torch.ones_like(normalizer))


def check_weights(values: Sequence[float] | None, name: str) -> tuple[float, ...] | None:
    """Validate a list of non-negative finite weights (None passes); return it as a tuple of floats."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}") from None
    if not out or any(not math.isfinite(v) or v < 0 for v in out):
        raise ValueError(f"{name} must be a non-empty list of finite non-negative numbers, got {list(values)}")
    return out


def weights_for(values: Sequence[float], k: int, name: str, like: torch.Tensor) -> torch.Tensor:
    """``values`` as a float tensor on ``like``'s device; ValueError unless there is one value per class."""
    if len(values) != k:
        raise ValueError(f"{name} needs {k} values, one per class ((background, foreground) for a one-channel "
                         f"head); got {len(values)}")
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def check_number(value: float, name: str, low: float = 0.0, high: float = math.inf) -> float:
    """``value`` as a float; ValueError unless it is finite and in [low, high]."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out) or not low <= out <= high:
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be finite and {bounds}, got {value!r}")
    return out
