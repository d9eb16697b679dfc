"""Prediction from a checkpoint alone: :class:`Predictor`."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..data.io import to_channels
from ..data.normalize import Normalization
from ..device import resolve_device
from ..engine.checkpoint import build_model, load_checkpoint
from ..models.base import SegmentationModel
from .padding import logits_to_labels, logits_to_probabilities, padded_forward


class Predictor:
    """Segments NumPy images of any size with a trained network.

    Args:
        model: the network (put in evaluation mode here).
        normalization: the intensity normalisation used in training.
        num_classes: classes in the label images (2 for a binary model).
        class_names: names of the classes, index order.
        device: where to run (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

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
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.normalization = normalization
        self.num_classes = num_classes
        self.class_names = class_names or [f"class{i}" for i in range(num_classes)]

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto") -> "Predictor":
        """Build a predictor from a checkpoint file (nothing else is needed)."""
        ckpt = load_checkpoint(path)
        model = build_model(ckpt)
        return cls(model, Normalization.from_dict(ckpt.normalization), ckpt.num_classes, ckpt.class_names, device)

    def _logits(self, image: np.ndarray, path: str | os.PathLike) -> torch.Tensor:
        chw = self.normalization(to_channels(image, self.model.in_channels, path))
        x = torch.from_numpy(chw)[None].to(self.device)
        with torch.inference_mode():
            return padded_forward(self.model, x)

    def predict_proba(self, image: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
        """Class probabilities, float32 (num_classes, H, W), for an (H, W) or (H, W, C) image."""
        return logits_to_probabilities(self._logits(image, path))[0].cpu().numpy()

    def predict(self, image: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
        """Class-index label image, uint8 (H, W) (int32 beyond 256 classes), for an (H, W) or (H, W, C) image."""
        labels = logits_to_labels(self._logits(image, path))[0].cpu().numpy()
        return labels.astype(np.uint8 if self.num_classes <= 256 else np.int32)
