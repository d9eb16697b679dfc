"""Whole-image forward passes: mirror-pad to a size the network accepts, run it, crop the output back."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..data.sampling import mirror_indices
from .base import SegmentationModel


def padded_forward(model: SegmentationModel, x: torch.Tensor,
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Logits for every pixel of ``x``, whatever its size.

    The image is extrapolated by mirroring to the smallest input the network accepts whose output covers it
    (for the paper's valid U-Net that adds the 92-pixel context margin on each side), and the output is cropped
    to the input size. ``forward`` runs the network (default: ``model`` itself; e.g. an ONNX Runtime session
    from :mod:`unetseg.inference.backends`); ``model`` gives the size rules.

    Shape:
        x: (N, C, H, W) -> (N, num_classes, H, W)
    """
    h, w = x.shape[-2:]
    tops, sizes = [], []
    for side in (h, w):
        size = model.input_size_for(side)
        tops.append(-model.margin(size))
        sizes.append(size)
    ys = torch.from_numpy(mirror_indices(tops[0], sizes[0], h)).to(x.device)
    xs = torch.from_numpy(mirror_indices(tops[1], sizes[1], w)).to(x.device)
    tile = x.index_select(-2, ys).index_select(-1, xs)
    return (model if forward is None else forward)(tile)[..., :h, :w]


def logits_to_labels(logits: torch.Tensor) -> torch.Tensor:
    """Class indices from logits: threshold 0 for one channel (sigmoid 0.5), argmax otherwise. (N, C, H, W) -> (N, H, W)."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


def logits_to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, K, H, W); a one-channel head gives K = 2 (background, foreground)."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits.float())
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)
