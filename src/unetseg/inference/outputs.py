"""Writing predictions: label images and overlays."""

from __future__ import annotations

import os

import numpy as np

from ..data.io import to_channels, write_png

# Distinct colours for classes 1, 2, ... (class 0 = background is left uncoloured).
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=np.uint8
)


def label_image(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The array to store for a prediction: 0/255 for binary, class indices (uint8, uint16 beyond 256) otherwise."""
    if num_classes == 2:
        return (labels > 0).astype(np.uint8) * 255
    return labels.astype(np.uint8 if num_classes <= 256 else np.uint16)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 picture of ``image`` (contrast-stretched to its 1-99.8 percentiles) with every non-background
    class blended in its palette colour. ``image`` is (H, W) or (H, W, C); ``labels`` is (H, W)."""
    rgb = to_channels(image, 3).astype(np.float32)
    lo, hi = np.percentile(rgb, [1.0, 99.8])
    rgb = np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    colours = PALETTE[(np.maximum(labels, 1) - 1) % len(PALETTE)].astype(np.float32)
    mask = (labels > 0)[..., None]
    blended = np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def write_prediction(path: str | os.PathLike, labels: np.ndarray, num_classes: int) -> None:
    """Write a label image as PNG (atomically)."""
    write_png(path, label_image(labels, num_classes))
