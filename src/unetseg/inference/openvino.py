"""The OpenVINO prediction backend: the network's ONNX export compiled by OpenVINO for the CPU.

Input shapes: the graph is compiled once, as it was exported. The in-memory export
(:func:`~unetseg.export.export_model`) and ``unetseg export`` without ``--size`` have a dynamic batch, height and
width, so one compiled model takes tiles of every accepted size; OpenVINO's CPU plugin prepares its kernels for
each new input shape on first use and keeps them in its runtime cache, so nothing is recompiled here. (One
compiled model per static shape showed no clear gain in a 2-core trial and would compile again for each new
size.) A graph exported with a fixed ``--size`` takes only that size; other inputs raise ValueError naming both.

Precision: ``"fp32"`` or ``"bf16"`` is passed to OpenVINO as an explicit ``INFERENCE_PRECISION_HINT`` (OpenVINO
would otherwise choose bfloat16 by itself on CPUs that have it); ``"bf16"`` needs a CPU for which OpenVINO reports
``BF16`` among its ``OPTIMIZATION_CAPABILITIES``. Inputs and outputs stay float32 either way.

Needs the ``openvino`` extra (``pip install unetseg[openvino]``) and, to export in memory, the ``onnx`` extra.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..export import ExportError, export_model, require
from ..models.base import SegmentationModel

#: the install command named when the openvino package is missing
OPENVINO_INSTALL_HINT = "pip install unetseg[openvino]"
#: our precision names -> OpenVINO's inference precision hints
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def require_openvino() -> Any:
    """The ``openvino`` module.

    Raises:
        ExportError: openvino is not installed (the message says how to install it).
    """
    try:
        return require("openvino")
    except ExportError as err:
        raise ExportError(f"the 'openvino' package is needed for the openvino backend: {OPENVINO_INSTALL_HINT} "
                          f"({err.__cause__ or err})") from err


def openvino_cpu_capabilities() -> list[str]:
    """What OpenVINO reports in the CPU device's ``OPTIMIZATION_CAPABILITIES`` (e.g. ``FP32``, ``BF16``)."""
    ov = require_openvino()
    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def openvino_bf16_supported() -> bool:
    """Whether OpenVINO reports bfloat16 support (``BF16``) for this CPU."""
    return "BF16" in openvino_cpu_capabilities()


class OpenVinoForward:
    """A network forward compiled by OpenVINO for the CPU: ``forward(batch)`` maps an (N, C, H, W) tensor to the
    (N, K, H', W') float32 logits tensor on the batch's device, like the network it was exported from.

    Args:
        model: a serialised ONNX graph (bytes) or the path of an ``.onnx`` file with one input and one output.
        precision: ``"fp32"`` or ``"bf16"``, set as OpenVINO's inference precision hint.
        threads: inference threads (default: ``torch.get_num_threads()``, so both backends use the same cores).

    Raises:
        ValueError: a precision other than ``"fp32"`` or ``"bf16"``, or ``"bf16"`` on a CPU for which OpenVINO does
            not report bfloat16 support.
        ExportError: openvino is not installed.
    """

    def __init__(self, model: bytes | str | os.PathLike, precision: str = "fp32", threads: int | None = None
                 ) -> None:
        ov = require_openvino()
        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(f"precision={precision!r}: the openvino backend runs "
                             f"{' or '.join(map(repr, OPENVINO_PRECISIONS))}")
        if precision == "bf16" and not openvino_bf16_supported():
            raise ValueError(f"precision='bf16': OpenVINO reports no bfloat16 support on this CPU (capabilities: "
                             f"{', '.join(openvino_cpu_capabilities())}); use precision='fp32'")
        core = ov.Core()
        graph = core.read_model(model if isinstance(model, bytes) else os.fspath(model))
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self.compiled = core.compile_model(graph, "CPU", {
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision],
        })
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        shape = self.compiled.input(0).get_partial_shape()
        self.fixed_size = None if shape[2].is_dynamic or shape[3].is_dynamic else (shape[2].get_length(),
                                                                                   shape[3].get_length())

    @classmethod
    def from_model(cls, model: SegmentationModel, precision: str = "fp32", threads: int | None = None,
                   **export_options: Any) -> "OpenVinoForward":
        """Export ``model`` in memory (:func:`~unetseg.export.export_model`, dynamic sizes unless ``size`` is
        given) and compile it."""
        proto = export_model(model.float(), **export_options)
        return cls(proto.SerializeToString(), precision, threads)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.fixed_size is not None and tuple(batch.shape[2:]) != self.fixed_size:
            raise ValueError(f"input of {batch.shape[2]}x{batch.shape[3]} pixels: this ONNX graph was exported for "
                             f"{self.fixed_size[0]}x{self.fixed_size[1]} inputs only (export without --size for "
                             f"any size)")
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        # share_inputs: no copy of the batch (inference is synchronous); outputs are copied out of the request
        logits = self.request.infer({0: array}, share_inputs=True)[self.output]
        return torch.from_numpy(np.asarray(logits, dtype=np.float32)).to(batch.device)
