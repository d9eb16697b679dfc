"""The alpha-channel rule, defined once: a 2nd channel (grey + alpha) or a 4th channel (RGBA) is alpha and carries
no image content, except where a layout says every channel is real (nnU-Net's channel files)."""

from __future__ import annotations

import numpy as np


def real_channels(count: int, alpha: bool = True) -> int:
    """The channels that carry image content among ``count``.

    Args:
        count: the channels stored in the file.
        alpha: whether a 2nd/4th channel is alpha (2 -> 1, 4 -> 3); False keeps every channel.

    Returns:
        ``count`` less the alpha channel, if there is one.
    """
    return count - 1 if alpha and count in (2, 4) else count


def stored_channels(image: np.ndarray) -> int:
    """The channels of an (H, W) or (H, W, C) image as stored (1 for (H, W))."""
    return 1 if image.ndim == 2 else int(image.shape[2])


def image_channels(image: np.ndarray, alpha: bool = True) -> int:
    """The channels of an (H, W[, C]) image once alpha is dropped (see :func:`real_channels`)."""
    return real_channels(stored_channels(image), alpha)


def drop_alpha(image: np.ndarray, alpha: bool = True) -> np.ndarray:
    """``image`` as (H, W, C) without its alpha channel (see :func:`real_channels`); a view, not a copy."""
    if image.ndim == 2:
        image = image[:, :, None]
    return image[:, :, : real_channels(image.shape[2], alpha)]
