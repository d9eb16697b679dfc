"""Prediction from a checkpoint alone: :class:`Predictor`."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import build_model, load_checkpoint
from ..data.io import to_channels
from ..data.masks import default_class_names
from ..data.normalize import Normalization
from ..device import resolve_device
from ..models.apply import logits_to_probabilities
from ..models.base import SegmentationModel
from ..precision import autocast, resolve_precision
from .backends import BACKENDS
from .postprocess import INSTANCE_METHODS, fill_holes, prediction_objects, remove_small_objects
from .tiling import Forward, predict_logits
from .tta import resolve_transforms, tta_predict


def _check_settings(tile: int | None, tta: str, instances: str, min_size: int,
                    thresholds: dict[str, float]) -> None:
    """ValueError for a setting out of range, naming it, its value and what was expected."""
    resolve_transforms(tta)  # fail early on an unknown set
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, got {tile}")
    if instances not in INSTANCE_METHODS:
        raise ValueError(f"instances={instances!r} is not one of {', '.join(INSTANCE_METHODS)}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0 pixels, got {min_size}")
    for name, value in thresholds.items():
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be a probability between 0 and 1 (exclusive), got {value}")


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
        backend: what runs the network on a batch of tiles, a name registered in
            :data:`~unetseg.inference.backends.BACKENDS`: ``"torch"`` (the model), ``"onnxruntime"`` (its ONNX
            export in an ONNX Runtime CPU session, float32: ``precision`` must be ``"auto"`` or ``"fp32"``, the
            device the CPU) or ``"openvino"`` (its ONNX export compiled by OpenVINO for the CPU, float32 or
            bfloat16); tiling, TTA and everything else are the same.
        fold_bn: fold each batch norm into the convolution before it (torch backend; equal up to rounding,
            faster; :mod:`unetseg.inference.fusion`). The ``model`` passed in is not changed.
        instances: how :meth:`objects` separates objects: ``"components"``, ``"watershed"`` or ``"seeded"``
            (:func:`unetseg.inference.postprocess.instances_from_semantic`).
        min_size: connected components of a foreground class smaller than this many pixels become background
            (0: keep all).
        instance_threshold: the foreground probability of the objects :meth:`objects` separates: 0.5 takes the
            predicted classes' foreground, a lower value narrows the gaps between objects, a higher one widens them
            (:func:`unetseg.inference.postprocess.prediction_objects`).
        seed_threshold: the probability of the confident foreground that seeds the ``"seeded"`` watershed.
        onnx_model: with the onnxruntime or openvino backend, an ``.onnx`` file exported from this same checkpoint
            (``unetseg export``) to run instead of exporting the network in memory (which takes seconds); its
            metadata must name the model's configuration.
        compile: compile the network with ``torch.compile`` (torch backend; each new tile shape compiles once,
            see :mod:`unetseg.compilation`).

    Raises:
        ValueError: a setting out of range or unknown (the message names it and what was expected), or options the
            backend cannot honour (e.g. ``compile`` with ``"onnxruntime"``).

    Prediction runs under ``torch.inference_mode``; on a CUDA device cuDNN autotuning
    (``torch.backends.cudnn.benchmark``) is switched on, as the tiles of an image all have one size.

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
        backend: str = "torch",
        compile: bool = False,
        min_size: int = 0,
        onnx_model: str | os.PathLike | None = None,
        fold_bn: bool = True,
        instances: str = "components",
        instance_threshold: float = 0.5,
        seed_threshold: float = 0.9,
    ) -> None:
        _check_settings(tile, tta, instances, min_size,
                        {"instance_threshold": instance_threshold, "seed_threshold": seed_threshold})
        backend_info = BACKENDS.get(backend).info  # RegistryError (a ValueError) naming the registered backends
        if device == "auto":  # a backend that runs on one device or at one precision only takes them for "auto"
            device = backend_info.get("device", device)
        if precision == "auto":
            precision = backend_info.get("precision", precision)
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.precision = resolve_precision(precision, self.device)
        self.backend = backend
        self.model = model.to(self.device).eval()
        self.forward = self._build_forward(compile, fold_bn, onnx_model)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # tiles share one shape: autotuned kernels pay off
        self.normalization = normalization
        self.num_classes = num_classes
        self.class_names = class_names or default_class_names(num_classes)
        self.tile, self.overlap, self.blending, self.tta, self.batch_size = tile, overlap, blending, tta, batch_size
        self.instances, self.instance_threshold, self.seed_threshold = instances, instance_threshold, seed_threshold
        self.min_size = min_size
        self.progress: Callable[[int, int], None] | None = None  # called with (tiles done, tiles in all)

    def _build_forward(self, compile: bool, fold_bn: bool, onnx_model: str | os.PathLike | None) -> Forward:
        """The backend's forward function (:data:`~unetseg.inference.backends.BACKENDS`); a backend that runs a
        network module (torch, batch norms folded) also becomes :attr:`model`, which gives the size rules."""
        forward = BACKENDS.build(self.backend, self.model, self.device, self.precision, compile=compile,
                                 fold_bn=fold_bn, onnx_model=onnx_model)
        if isinstance(forward, SegmentationModel):
            self.model = forward
        return forward

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", **options: Any) -> "Predictor":
        """Build a predictor from a checkpoint file (nothing else is needed); ``options`` as in the constructor
        (None values are left out).

        The settings a training run chose on its validation set (``tta``, ``min_size``, ``instances``,
        ``instance_threshold``, ``seed_threshold``; stored in
        ``best.safetensors`` as :class:`~unetseg.checkpoint.PredictionSettings` by :mod:`unetseg.inference.tune`)
        are the defaults; ``options`` override them.

        Raises:
            CheckpointError: a missing or invalid checkpoint.
            ValueError: an invalid option (see the constructor).
        """
        ckpt = load_checkpoint(path)
        model = build_model(ckpt)
        tuned = ckpt.prediction.predictor_options() if ckpt.prediction is not None else {}
        return cls(model, Normalization.from_dict(ckpt.normalization), ckpt.num_classes, ckpt.class_names, device,
                   **{**tuned, **{k: v for k, v in options.items() if v is not None}})

    def settings(self) -> dict[str, Any]:
        """The prediction settings in use (what a run record should state)."""
        return {"tile": self.tile, "overlap": self.overlap, "blending": self.blending, "tta": self.tta,
                "batch_size": self.batch_size, "precision": self.precision, "min_size": self.min_size,
                "backend": self.backend, "instances": self.instances, "instance_threshold": self.instance_threshold,
                "seed_threshold": self.seed_threshold}

    def objects(self, probs: np.ndarray, labels: np.ndarray, method: str | None = None) -> np.ndarray:
        """Instance labels (int32, 0 = background) of the foreground of ``labels`` (from :meth:`predict`), separated
        by ``method`` (default: the ``instances`` setting) on the foreground probability ``1 - probs[0]`` (from
        :meth:`predict_proba`), with the ``instance_threshold`` and ``seed_threshold`` settings; objects smaller than
        ``min_size`` after the split are removed."""
        return prediction_objects(1.0 - probs[0], labels, method or self.instances, threshold=self.instance_threshold,
                                  seed_threshold=self.seed_threshold, min_size=self.min_size)

    def postprocess(self, labels: np.ndarray) -> np.ndarray:
        """The clean-up ``predict`` applies to a class-index image: small components removed (``min_size``)."""
        return remove_small_objects(labels, self.min_size) if self.min_size > 1 else labels

    def labels(self, probs: np.ndarray, fill: bool = False) -> np.ndarray:
        """Class-index image from :meth:`predict_proba` output, as :meth:`predict` gives it: the most probable
        class (uint8; int32 beyond 256 classes), holes filled in every class with ``fill``, then
        :meth:`postprocess`."""
        labels = probs.argmax(axis=0).astype(np.uint8 if self.num_classes <= 256 else np.int32)
        return self.postprocess(fill_holes(labels) if fill else labels)

    def _probabilities(self, image: np.ndarray, path: str | os.PathLike) -> torch.Tensor:
        chw = self.normalization(to_channels(image, self.model.in_channels, path))
        x = torch.from_numpy(chw).to(self.device)

        def logits(img: torch.Tensor) -> torch.Tensor:
            return predict_logits(self.model, img, self.tile, self.overlap, self.blending, self.batch_size,
                                  self.progress, self.forward)

        with torch.inference_mode(), autocast(self.precision, self.device):
            return tta_predict(logits, x, self.tta, logits_to_probabilities).float()

    def predict_proba(self, image: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
        """Class probabilities, float32 (num_classes, H, W), for an (H, W) or (H, W, C) image of any size."""
        return self._probabilities(image, path).cpu().numpy()

    def predict(self, image: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
        """Class-index label image, uint8 (H, W) (int32 beyond 256 classes), for an (H, W) or (H, W, C) image of
        any size: the most probable class (for a binary model: foreground probability > 0.5), then
        :meth:`postprocess`."""
        return self.labels(self.predict_proba(image, path))
