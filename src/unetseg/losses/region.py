"""Region losses: soft Dice and Tversky (Salehi et al. 2017).

With ``p`` the predicted probabilities (softmax over C >= 2 channels, sigmoid of the single channel for C == 1)
and ``t`` the one-hot target, each class c gets soft counts summed over the batch and all counted pixels::

    TP_c = sum(p_c * t_c)    FP_c = sum(p_c * (1 - t_c))    FN_c = sum((1 - p_c) * t_c)

Pixels whose target is ``ignore_index`` are left out of every sum. The ``weight_map`` argument is accepted for a
common signature and ignored: these losses are ratios of sums over the region, not means of per-pixel terms.

The binary form (C == 1) scores the foreground class only (``include_background`` has no effect there and
``class_weights`` are refused). The multi-class form averages the per-class losses over all classes, or over
classes 1..C-1 with ``include_background=False``, weighted by ``class_weights`` (one per class, background
included even when it is excluded) if given: ``sum_c w_c L_c / sum_c w_c``.

A class absent from both prediction and target (all sums about 0) has loss 0 thanks to the smoothing term. With
``smooth=0`` the ratio 0/0 (every sum exactly 0, e.g. all pixels ignored) counts as a perfect score, but an absent
class with tiny non-zero predicted probabilities then has loss 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._common import check_number, check_weights, num_classes_of, prepare, weights_for


def _soft_counts(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None, weight_map: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class soft (TP, FP, FN), each of shape (C,) (shape (1,) for a binary head: the foreground)."""
    logits = logits.float()
    target, valid = prepare(logits, target, ignore_index, weight_map)
    if logits.shape[1] == 1:
        probs, onehot = torch.sigmoid(logits), target.unsqueeze(1).to(logits.dtype)
    else:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    mask = valid.unsqueeze(1)
    probs = torch.where(mask, probs, torch.zeros_like(probs))
    onehot = onehot * mask
    dims = (0, *range(2, logits.ndim))
    tp = (probs * onehot).sum(dims)
    return tp, probs.sum(dims) - tp, onehot.sum(dims) - tp


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator with 0/0 := 1 (used only when smooth == 0)."""
    empty = denominator <= 0
    return torch.where(empty, torch.ones_like(numerator),
                       numerator / torch.where(empty, torch.ones_like(denominator), denominator))


def _class_mean(
    per_class: torch.Tensor, logits: torch.Tensor, include_background: bool, class_weights: Sequence[float] | None
) -> torch.Tensor:
    weights = check_weights(class_weights, "class_weights")
    if logits.shape[1] == 1:
        if weights is not None:
            raise ValueError("class_weights of a region loss need a multi-class head: the binary form only has "
                             "the foreground term")
        return per_class.mean()
    w = (torch.ones_like(per_class) if weights is None
         else weights_for(weights, num_classes_of(logits), "class_weights", per_class))
    if weights is not None and not sum(weights[0 if include_background else 1:]) > 0:
        raise ValueError(f"class_weights {list(weights)} give the scored classes a zero total weight")
    if not include_background:
        per_class, w = per_class[1:], w[1:]
    return (w * per_class).sum() / w.sum()


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    smooth: float = 1.0,
    include_background: bool = True,
    class_weights: Sequence[float] | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 TP_c + s) / (2 TP_c + FP_c + FN_c + s)`` averaged over classes (module docstring).

    ``2 TP + FP + FN = sum(p_c) + sum(t_c)``, so this is the usual ``1 - (2|P∩T| + s) / (|P| + |T| + s)`` with
    sums over the batch and all pixels. ``smooth`` (s >= 0, default 1) keeps the ratio defined for empty classes
    and softens the loss of small objects. ``weight_map`` is ignored.
    """
    s = check_number(smooth, "smooth")
    tp, fp, fn = _soft_counts(logits, target, ignore_index, weight_map)
    per_class = 1.0 - _ratio(2.0 * tp + s, 2.0 * tp + fp + fn + s)
    return _class_mean(per_class, logits, include_background, class_weights)


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
    include_background: bool = True,
    class_weights: Sequence[float] | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Tversky loss ``1 - (TP_c + s) / (TP_c + alpha FP_c + beta FN_c + s)`` averaged over classes.

    ``alpha`` weighs false positives and ``beta`` false negatives (the defaults 0.3/0.7, the paper's best
    setting, favour recall). With ``alpha = beta = 0.5`` the index is ``(TP + s) / ((|P| + |T|) / 2 + s)``, so
    ``tversky_loss(alpha=.5, beta=.5, smooth=s)`` equals ``dice_loss(smooth=2 * s)``; ``alpha = beta = 1`` is the
    soft Jaccard (IoU) loss. ``weight_map`` is ignored.
    """
    a, b = check_number(alpha, "alpha"), check_number(beta, "beta")
    s = check_number(smooth, "smooth")
    tp, fp, fn = _soft_counts(logits, target, ignore_index, weight_map)
    per_class = 1.0 - _ratio(tp + s, tp + a * fp + b * fn + s)
    return _class_mean(per_class, logits, include_background, class_weights)
