"""Per-pixel losses: cross-entropy (softmax CE / binary CE with logits) and focal loss (Lin et al. 2017).

Both compute a loss ``l_i`` per pixel and reduce it as ``sum_i(m_i * a_i * l_i) / D`` over the counted pixels
(those whose target is not ``ignore_index``), where ``m_i`` is the optional ``weight_map`` (1 without one),
``a_i`` a per-class weight of the pixel's true class (1 without one) and ``D`` the normaliser described in each
function. When no pixel is counted the loss is 0 (with a zero gradient) rather than NaN.

A one-channel head is binary: ``p = sigmoid(x)`` is the foreground probability, which is the same as a two-class
softmax over the logits ``(0, x)``; both forms below are defined so that this equivalence holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._common import check_number, check_weights, num_classes_of, pixel_mean, prepare, weights_for


def _log_probs_of_target(
    logits: torch.Tensor, target: torch.Tensor, with_complement: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log p_t`` (N, H, W), the log-probability of each pixel's class, and optionally ``log(1 - p_t)``.

    Both are computed from log-sum-exps so they stay finite with finite gradients for any logits.
    """
    if logits.shape[1] == 1:
        # binary: z = x for foreground, -x for background; p_t = sigmoid(z), 1 - p_t = sigmoid(-z)
        z = logits[:, 0] * (2.0 * target.to(logits.dtype) - 1.0)
        return F.logsigmoid(z), (F.logsigmoid(-z) if with_complement else None)
    log_p = torch.log_softmax(logits, dim=1)
    log_pt = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    if not with_complement:
        return log_pt, None
    # log(1 - p_t) = log(sum over the other classes of p_c)
    is_target = F.one_hot(target, logits.shape[1]).movedim(-1, 1).bool()
    return log_pt, torch.logsumexp(log_p.masked_fill(is_target, float("-inf")), dim=1)


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    class_weights: Sequence[float] | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Pixel-wise cross-entropy ``l_i = -log p_t``: softmax CE for C >= 2, binary CE with logits for C == 1.

    Args:
        logits: (N, C, H, W) raw scores.
        target: (N, H, W) class indices (0/1 for C == 1).
        weight_map: optional (N, H, W) per-pixel weights ``m_i``; they multiply each pixel's loss and are not part
            of the normaliser: ``sum(m_i * l_i) / n_counted`` without class weights, so an all-ones map changes
            nothing and a map of 2s doubles the loss.
        class_weights: one weight per class (for C == 1: ``(background, foreground)``) with the semantics of
            ``torch.nn.functional.cross_entropy(weight=...)``: pixel i is weighted by ``w[y_i]`` and the result is
            the weighted mean ``sum(m_i * w[y_i] * l_i) / sum(w[y_i])`` over counted pixels. (This is not
            ``pos_weight``, which would not renormalise.) For C == 1 it equals the two-class softmax CE over the
            logits ``(0, x)`` with the same weights.
        ignore_index: target value of pixels left out of the loss and its normaliser (None: none).

    Returns:
        A scalar tensor (float32).
    """
    logits = logits.float()
    target, valid = prepare(logits, target, ignore_index, weight_map)
    per_pixel = -_log_probs_of_target(logits, target, with_complement=False)[0]
    normalizer = None
    weights = check_weights(class_weights, "class_weights")
    if weights is not None:
        w = weights_for(weights, num_classes_of(logits), "class_weights", logits)[target]
        per_pixel = per_pixel * w
        normalizer = torch.where(valid, w, torch.zeros_like(w)).sum()
    return pixel_mean(per_pixel, valid, weight_map, normalizer)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Focal loss ``l_i = -alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017), mean over counted pixels.

    Args:
        logits: (N, C, H, W) raw scores; C == 1 is binary (sigmoid), C >= 2 softmax.
        target: (N, H, W) class indices.
        weight_map: optional (N, H, W) per-pixel weights ``m_i``: ``sum(m_i * l_i) / n_counted``.
        gamma: focusing parameter >= 0; 0 gives the cross-entropy (times alpha_t).
        alpha: class balancing. None: ``alpha_t = 1``. A float a in [0, 1] (binary heads only): ``a`` for
            foreground pixels and ``1 - a`` for background ones, as in the paper (and torchvision's
            ``sigmoid_focal_loss``). A list: one weight per class (``(background, foreground)`` for C == 1),
            ``alpha_t = alpha[y_i]``. Unlike ``class_weights`` of :func:`cross_entropy`, the result is divided by
            the number of counted pixels, not by the sum of the weights.
        ignore_index: target value of pixels left out of the loss and its normaliser.

    Returns:
        A scalar tensor (float32).
    """
    gamma = check_number(gamma, "gamma")
    logits = logits.float()
    target, valid = prepare(logits, target, ignore_index, weight_map)
    log_pt, log_rest = _log_probs_of_target(logits, target, with_complement=gamma != 0)
    per_pixel = -log_pt if log_rest is None else -torch.exp(gamma * log_rest) * log_pt
    if alpha is not None:
        k = num_classes_of(logits)
        if isinstance(alpha, (int, float)):
            if k != 2:
                raise ValueError(f"a single alpha is for one-channel heads; give {k} values, one per class")
            a = check_number(alpha, "alpha", 0.0, 1.0)
            per_pixel = per_pixel * weights_for((1.0 - a, a), 2, "alpha", logits)[target]
        else:
            per_pixel = per_pixel * weights_for(check_weights(alpha, "alpha") or (), k, "alpha", logits)[target]
    return pixel_mean(per_pixel, valid, weight_map)
