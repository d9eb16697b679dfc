"""Prediction backends: what runs the network forward on a batch of tiles.

Tiling, padding, test-time augmentation and post-processing are the same for every backend; a backend only
replaces ``model(batch)``. ``"torch"`` is the network itself (eager, or compiled with ``--compile``);
``"onnxruntime"`` runs its ONNX export (float32, CPU) in an ONNX Runtime session.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..export import export_model, require
from ..models.base import SegmentationModel

BACKENDS = ("torch", "onnxruntime")


class OnnxRuntimeForward:
    """A network forward on ONNX Runtime's CPU provider: ``forward(batch)`` maps an (N, C, H, W) tensor to the
    (N, K, H', W') float32 logits tensor, like the network it was exported from.

    Args:
        model: a serialised ONNX graph (bytes) or the path of an ``.onnx`` file with one input and one output.
        threads: intra-op threads (default: ``torch.get_num_threads()``, so both backends use the same cores).
    """

    def __init__(self, model: bytes | str | os.PathLike, threads: int | None = None) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    @classmethod
    def from_model(cls, model: SegmentationModel, threads: int | None = None, **export_options: Any
                   ) -> "OnnxRuntimeForward":
        """Export ``model`` in memory (:func:`~unetseg.export.export_model`) and open a session on it."""
        proto = export_model(model.float(), **export_options)
        return cls(proto.SerializeToString(), threads)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = self.session.run([self.output_name], {self.input_name: array})[0]
        return torch.from_numpy(logits).to(batch.device)
