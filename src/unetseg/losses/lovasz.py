"""Lovasz losses (Berman et al. 2018): convex surrogates of the Jaccard (IoU) loss.

For one class with ground-truth set G, the Jaccard loss of a set M of mispredicted pixels is
``Delta(M) = |M| / |G ∪ M|``. Its Lovasz extension at a vector of non-negative pixel errors ``m`` is
``sum_i m_(i) * (Delta({1..i}) - Delta({1..i-1}))`` with the pixels in decreasing order of error. It equals
``Delta`` on 0/1 vectors, is piecewise linear and convex, and its gradient is the vector of those differences.

* Lovasz-softmax (C >= 2): errors ``|1{y = c} - p_c|`` of the softmax, one extension per class, averaged over the
  classes chosen by ``classes``.
* Lovasz hinge (C == 1): hinge errors ``max(0, 1 - x * s)`` with ``s = +1`` on foreground and ``-1`` on background
  pixels, and the foreground's Jaccard loss; it is exactly 0 when every pixel is on the right side with margin 1.

Ignored pixels (target == ``ignore_index``) take no part in the sets or the sums. ``weight_map`` is accepted for a
common signature and ignored. ``per_image=False`` (default) computes one extension over the whole batch;
``per_image=True`` averages the per-image losses over the images that have at least one counted pixel (and, with
``classes="present"``, so at least one present class). A loss with nothing to score is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._common import prepare

Classes = str | Sequence[int]


def jaccard_loss_increments(gt_sorted: torch.Tensor) -> torch.Tensor:
    """``Delta({1..i}) - Delta({1..i-1})`` along the last dimension, for 0/1 labels sorted by decreasing error.

    ``gt_sorted[..., i]`` is 1 where the i-th pixel in that order belongs to the class. Taking the first i pixels
    as mispredicted leaves ``|G| - cumsum(gt)`` pixels of G correct and makes the union ``|G| + cumsum(1 - gt)``
    (never 0), so ``Delta_i = 1 - (|G| - cumsum(gt)) / (|G| + cumsum(1 - gt))``.
    """
    total = gt_sorted.sum(-1, keepdim=True)
    correct = total - gt_sorted.cumsum(-1)
    union = total + (1.0 - gt_sorted).cumsum(-1)
    delta = 1.0 - correct / union
    return torch.cat([delta[..., :1], delta[..., 1:] - delta[..., :-1]], dim=-1)


def lovasz_extension(errors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The Lovasz extension of the Jaccard loss at non-negative ``errors``, along the last dimension.

    ``gt`` holds the 0/1 class membership of each element; leading dimensions are batched. Elements with error 0
    and gt 0 do not change the value (that is how ignored pixels are removed without changing shapes).
    """
    errors_sorted, order = torch.sort(errors, dim=-1, descending=True)
    return (errors_sorted * jaccard_loss_increments(gt.gather(-1, order))).sum(-1)


def _mean_over(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    keep = keep.to(values.dtype)
    return (values * keep).sum(-1) / keep.sum(-1).clamp_min(1.0)


def lovasz_softmax(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    per_image: bool = False,
    classes: Classes = "present",
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Lovasz-softmax loss for a multi-class head (C >= 2); see the module docstring.

    Args:
        classes: ``"present"`` (default): the classes that occur among the counted target pixels (of the batch,
            or of each image with ``per_image``); ``"all"``: every class; or a list of class indices.
        per_image: one extension per image, then the mean over images; otherwise one over the whole batch.
    """
    logits = logits.float()
    if logits.shape[1] < 2:
        raise ValueError("lovasz_softmax needs C >= 2 channels; use lovasz_hinge for a one-channel head")
    k = logits.shape[1]
    target, valid = prepare(logits, target, ignore_index, weight_map)
    mask = valid.unsqueeze(1).flatten(2)  # (N, 1, P)
    probs = torch.softmax(logits, dim=1).flatten(2)  # (N, C, P)
    gt = F.one_hot(target, k).movedim(-1, 1).flatten(2).to(probs.dtype) * mask
    errors = torch.where(mask, (gt - probs).abs(), torch.zeros_like(probs))
    if not per_image:
        gt, errors = (x.transpose(0, 1).reshape(1, k, -1) for x in (gt, errors))
    per_class = lovasz_extension(errors, gt)  # (B, C)
    if classes == "present":
        chosen = gt.sum(-1) > 0
    elif classes == "all":
        chosen = torch.ones_like(per_class, dtype=torch.bool)
    else:
        chosen = torch.zeros_like(per_class, dtype=torch.bool)
        chosen[:, check_classes(classes, k)] = True
    counted = valid.flatten(1).any(-1) if per_image else valid.any().reshape(1)
    return _mean_over(_mean_over(per_class, chosen), chosen.any(-1) & counted)


def check_classes(classes: Classes, k: int | None) -> list[int]:
    """The class indices of a ``classes`` list, checked to be integers in [0, k) (>= 0 when k is None)."""
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"classes must be 'present', 'all' or a non-empty list of class indices, got {classes!r}")
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 or (k is not None and c >= k) for c in classes):
        raise ValueError(f"classes must be integers in [0, {k if k is not None else 'C'}), got {list(classes)}")
    return list(classes)


def lovasz_hinge(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    per_image: bool = False,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Lovasz hinge loss for a one-channel (binary) head; see the module docstring."""
    logits = logits.float()
    if logits.shape[1] != 1:
        raise ValueError(f"lovasz_hinge needs a one-channel head, got {logits.shape[1]} channels")
    target, valid = prepare(logits, target, ignore_index, weight_map)
    valid = valid.flatten(1)
    gt = target.flatten(1).to(logits.dtype) * valid
    margins = logits.flatten(1) * (2.0 * target.flatten(1).to(logits.dtype) - 1.0)
    errors = torch.where(valid, F.relu(1.0 - margins), torch.zeros_like(margins))
    if not per_image:
        gt, errors, valid = gt.reshape(1, -1), errors.reshape(1, -1), valid.reshape(1, -1)
    return _mean_over(lovasz_extension(errors, gt), valid.any(-1))


def lovasz_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor | None = None,
    *,
    per_image: bool = False,
    classes: Classes = "present",
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Lovasz hinge for a one-channel head, Lovasz-softmax otherwise (``classes`` must stay "present" for the
    hinge, which scores the foreground only). ``weight_map`` is ignored."""
    if logits.ndim >= 2 and logits.shape[1] == 1:
        if classes != "present":
            raise ValueError("classes applies to multi-class heads; the Lovasz hinge scores the foreground only")
        return lovasz_hinge(logits, target, weight_map, per_image=per_image, ignore_index=ignore_index)
    return lovasz_softmax(logits, target, weight_map, per_image=per_image, classes=classes,
                          ignore_index=ignore_index)
