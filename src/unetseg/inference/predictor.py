"""Prediction from a checkpoint alone: :class:`Predictor`."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

from ..data.io import to_channels
from ..data.normalize import Normalization
from ..device import resolve_device
from ..precision import autocast, resolve_precision
from ..engine.checkpoint import build_model, load_checkpoint
from ..models.base import SegmentationModel
from .padding import logits_to_probabilities
from .tiling import predict_logits
from .tta import resolve_transforms, tta_predict


class Predictor:
    """Segments NumPy images of any size with a trained network.

    Args:
        model: the network (put in evaluation mode here).
        normalization: the intensity normalisation used in training.
        num_classes: classes in the label images (2 for a binary model).
        class_names: names of the classes, index order.
        device: where to run (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
        tile: output tile side for tiled prediction; None predicts the whole image in one pass (fine up to a few
            thousand pixels a side on a CPU). Valid-padding networks (the paper's U-Net) use the overlap-tile
            strategy, same-padding networks a sliding window with ``overlap`` and ``blending``.
        overlap: sliding window: fraction of the window shared by neighbouring tiles.
        blending: sliding window: ``"gaussian"`` (centre-weighted) or ``"constant"``.
        tta: test-time augmentation, averaged in probability space: ``"none"``, ``"flips"``, ``"rot"`` (the
            four 90-degree rotations) or ``"d4"`` (all 8 flips and rotations).
        batch_size: tiles per forward pass.
        precision: ``"auto"`` (bfloat16 autocast and channels-last memory where the device has native bfloat16,
            float32 elsewhere), ``"fp32"`` or ``"bf16"``; see :mod:`unetseg.precision`.

    Example:
        >>> predictor = Predictor.from_checkpoint("runs/demo/best.safetensors")  # doctest: +SKIP
        >>> labels = predictor.predict(image)  # (H, W) uint8 class indices  # doctest: +SKIP
    """

    def __init__(
        self,
        model: SegmentationModel,
        normalization: Normalization,
        num_classes: int,
        class_names: list[str] | None = None,
        device: str | torch.device = "auto",
        tile: int | None = None,
        overlap: float = 0.25,
        blending: str = "gaussian",
        tta: str = "none",
        batch_size: int = 4,
        precision: str = "auto",
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        if self.precision == "bf16":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.normalization = normalization
        self.num_classes = num_classes
        self.class_names = class_names or [f"class{i}" for i in range(num_classes)]
        resolve_transforms(tta)  # fail early on an unknown set
        if tile is not None and tile < 1:
            raise ValueError(f"tile must be a positive number of pixels, got {tile}")
        self.tile, self.overlap, self.blending, self.tta, self.batch_size = tile, overlap, blending, tta, batch_size
        self.progress: Callable[[int, int], None] | None = None  # called with (tiles done, tiles in all)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", **options: Any) -> "Predictor":
        """Build a predictor from a checkpoint file (nothing else is needed); ``options`` as in the constructor."""
        ckpt = load_checkpoint(path)
        model = build_model(ckpt)
        return cls(model, Normalization.from_dict(ckpt.normalization), ckpt.num_classes, ckpt.class_names, device,
                   **options)

    def _probabilities(self, image: np.ndarray, path: str | os.PathLike) -> torch.Tensor:
        chw = self.normalization(to_channels(image, self.model.in_channels, path))
        x = torch.from_numpy(chw).to(self.device)

        def logits(img: torch.Tensor) -> torch.Tensor:
            return predict_logits(self.model, img, self.tile, self.overlap, self.blending, self.batch_size,
                                  self.progress)

        with torch.inference_mode(), autocast(self.precision, self.device):
            return tta_predict(logits, x, self.tta, logits_to_probabilities).float()

    def predict_proba(self, image: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
        """Class probabilities, float32 (num_classes, H, W), for an (H, W) or (H, W, C) image of any size."""
        return self._probabilities(image, path).cpu().numpy()

    def predict(self, image: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
        """Class-index label image, uint8 (H, W) (int32 beyond 256 classes), for an (H, W) or (H, W, C) image of
        any size: the most probable class (for a binary model: foreground probability > 0.5)."""
        labels = self._probabilities(image, path).argmax(dim=0).cpu().numpy()
        return labels.astype(np.uint8 if self.num_classes <= 256 else np.int32)
