"""Prediction backends: what runs the network forward on a batch of tiles.

Tiling, padding, test-time augmentation and post-processing are the same for every backend; a backend only
replaces ``model(batch)``. Backends are registered in :data:`BACKENDS`:

* ``"torch"``: the network itself (batch norms folded into the convolutions, eager or compiled with
  ``--compile``);
* ``"onnxruntime"``: its ONNX export (float32, CPU) in an ONNX Runtime session;
* ``"openvino"``: its ONNX export compiled by OpenVINO (float32 or bfloat16, CPU; :mod:`.openvino`).

A backend factory is called as ``factory(model, device, precision, compile=..., fold_bn=..., onnx_model=...)``
with the model on ``device`` in evaluation mode and ``precision`` resolved (``"fp32"`` or ``"bf16"``), and returns
the forward function; it raises ValueError for options it cannot honour. The registration info ``device`` and
``precision`` name what a backend always runs on: the predictor uses them where ``"auto"`` was asked for.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..compilation import compile_model
from ..export import export_model, read_onnx_metadata, require
from ..models.base import SegmentationModel
from ..registry import Registry
from .fusion import fold_batch_norm
from .openvino import OpenVinoForward
from .tiling import Forward

BACKENDS: Registry[Forward] = Registry("backend")


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


@BACKENDS.register("torch", description="the PyTorch network, eager or compiled")
def torch_backend(model: SegmentationModel, device: torch.device, precision: str, /, compile: bool = False,
                  fold_bn: bool = True, onnx_model: str | os.PathLike | None = None) -> SegmentationModel:
    """The network itself: with ``fold_bn`` a copy with every convolution + batch norm pair folded into one
    convolution (:mod:`unetseg.inference.fusion`), in channels-last memory for ``"bf16"``, compiled in place with
    ``compile`` (:mod:`unetseg.compilation`).

    Raises:
        ValueError: an ``onnx_model`` (only the onnxruntime and openvino backends run one).
    """
    if onnx_model is not None:
        raise ValueError(f"onnx_model={str(onnx_model)!r} needs backend='onnxruntime' or 'openvino'")
    if fold_bn:
        model = fold_batch_norm(model)[0]
    if precision == "bf16":
        model.to(memory_format=torch.channels_last)
    compile_model(model, compile, device)
    return model


@BACKENDS.register("onnxruntime", description="the network's ONNX export in ONNX Runtime, float32 on the CPU",
                   device="cpu", precision="fp32")
def onnxruntime_backend(model: SegmentationModel, device: torch.device, precision: str, /, compile: bool = False,
                        fold_bn: bool = True, onnx_model: str | os.PathLike | None = None) -> OnnxRuntimeForward:
    """The network exported to ONNX in memory, or ``onnx_model`` (an ``.onnx`` file exported from the same
    network), run by ONNX Runtime's CPU provider in float32. ``fold_bn`` is not needed: ONNX Runtime folds batch
    norms itself when it optimises the graph.

    Raises:
        ValueError: a device other than the CPU, a precision other than ``"fp32"``, ``compile``, or an
            ``onnx_model`` exported from another network configuration (names the file).
    """
    if device.type != "cpu" or precision != "fp32" or compile:
        raise ValueError(f"the onnxruntime backend runs float32 on the CPU without --compile; got "
                         f"device={device.type}, precision={precision}, compile={compile}")
    if onnx_model is None:
        return OnnxRuntimeForward.from_model(model)
    _check_exported_from(onnx_model, model)
    return OnnxRuntimeForward(onnx_model)


@BACKENDS.register("openvino", description="the network's ONNX export compiled by OpenVINO, float32 or bfloat16 "
                   "on the CPU", device="cpu")
def openvino_backend(model: SegmentationModel, device: torch.device, precision: str, /, compile: bool = False,
                     fold_bn: bool = True, onnx_model: str | os.PathLike | None = None) -> OpenVinoForward:
    """The network exported to ONNX in memory, or ``onnx_model`` (an ``.onnx`` file exported from the same
    network), compiled by OpenVINO for the CPU with ``precision`` as its inference precision hint
    (:mod:`unetseg.inference.openvino`). ``"auto"`` precision follows the torch rule (:mod:`unetseg.precision`):
    bfloat16 where the CPU has native bfloat16. ``fold_bn`` is not needed: OpenVINO folds batch norms itself.

    Raises:
        ValueError: a device other than the CPU, ``compile``, ``"bf16"`` where OpenVINO reports no bfloat16
            support, or an ``onnx_model`` exported from another network configuration (names the file).
    """
    if device.type != "cpu" or compile:
        raise ValueError(f"the openvino backend runs on the CPU without --compile; got device={device.type}, "
                         f"compile={compile}")
    if onnx_model is None:
        return OpenVinoForward.from_model(model, precision)
    _check_exported_from(onnx_model, model)
    return OpenVinoForward(onnx_model, precision)


def _check_exported_from(onnx_model: str | os.PathLike, model: SegmentationModel) -> None:
    """ValueError naming ``onnx_model`` when its metadata names another network configuration than ``model``'s."""
    exported = read_onnx_metadata(onnx_model)["model_config"]
    if exported != model.config:
        raise ValueError(f"{onnx_model}: exported from model {exported}, not {model.config}")
