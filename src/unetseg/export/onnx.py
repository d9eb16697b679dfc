"""ONNX export for deployment: the network with a dynamic batch and dynamic height and width (restricted to the sizes
the network accepts), and everything a deployment needs to use it stored as ONNX metadata.

The graph maps ``image`` (N, in_channels, H, W) float32, already normalised, to ``logits`` (N, K, H', W'). The sizes
follow the network's input-size rule, ``H = min_side + k * side_step`` (``188 + 16k`` for the paper's U-Net,
``16k`` for ``unet_bn``), and ``H' = H - 2 * margin``. The metadata property ``unetseg`` is a JSON document with
the model configuration, classes, normalisation, the size rule and how to turn logits into labels
(:data:`METADATA_KEY`, read back with :func:`read_onnx_metadata`).

Export uses the ``torch.export``-based ONNX exporter, which needs the ``onnx`` and ``onnxscript`` packages:
``pip install unetseg[onnx]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import Checkpoint, build_model, load_checkpoint, resolve_checkpoint
from ..data.masks import default_class_names
from ..fileio import atomic_path
from ..models.base import SegmentationModel

METADATA_KEY = "unetseg"
FORMAT = "unetseg-onnx"
VERSION = 1
DEFAULT_OPSET = 18  # the opset the torch.export-based exporter translates to natively; ONNX Runtime >= 1.14 runs it
INSTALL_HINT = "pip install unetseg[onnx]"


class ExportError(RuntimeError):
    """ONNX export or ONNX Runtime is unavailable or failed; the message names the file or the missing package."""


def require(package: str) -> Any:
    """Import ``package`` (``onnx``, ``onnxscript``, ``onnxruntime``) or raise :class:`ExportError` saying how to
    install it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ExportError(f"the {package!r} package is needed for ONNX export and the onnxruntime backend: "
                          f"{INSTALL_HINT} ({err})") from err


def size_rule(model: SegmentationModel) -> dict[str, int]:
    """The accepted input sides of ``model`` as ``{"min_side", "side_step", "margin"}``: sides
    ``min_side + k * side_step`` (k >= 0), each losing ``margin`` pixels per border.

    Raises:
        ExportError: the accepted sides are not such an arithmetic progression with a constant margin (the
            graph could then not be exported with dynamic sizes; export a fixed ``size`` instead).
    """
    first = model.input_size_for(1)
    step = next((s for s in range(1, 4097) if model.is_valid_input(first + s)), None)
    if step is None:
        raise ExportError(f"model {model.config.get('name')!r}: no accepted input side above {first}")
    margin = model.margin(first)
    for side in range(first, first + 6 * step):
        valid = (side - first) % step == 0
        if model.is_valid_input(side) != valid or valid and model.margin(side) != margin:
            raise ExportError(f"model {model.config.get('name')!r}: accepted input sides are not {first} + k*{step} "
                              f"with a constant margin ({model.input_size_rule()}); export a fixed size instead")
    return {"min_side": first, "side_step": step, "margin": margin}


def _check_size(model: SegmentationModel, size: int | None) -> None:
    if size is not None and not model.is_valid_input(size):
        raise ExportError(f"size {size} is not accepted by model {model.config.get('name')!r}: "
                          f"{model.input_size_rule()}")


def onnx_metadata(model: SegmentationModel, ckpt: Checkpoint | None = None, size: int | None = None) -> dict[str, Any]:
    """The JSON document stored under :data:`METADATA_KEY`: everything a deployment needs besides the graph.

    Keys: ``format``, ``version``, ``model_config``, ``in_channels``, ``logit_channels``, ``num_classes``,
    ``class_names``, ``activation`` (``"sigmoid"``: one logit channel, foreground where the logit > 0;
    ``"softmax"``: argmax over the channels), ``normalization`` (as in the checkpoint, see
    :class:`~unetseg.data.normalize.Normalization`), ``input`` (``layout`` NCHW float32 normalised, ``min_side``,
    ``side_step``, ``margin``, ``fixed_side`` when exported with a fixed size), ``epoch`` and ``source``
    (checkpoint file name) when exported from a checkpoint.
    """
    _check_size(model, size)
    rule = size_rule(model) if size is None else {"min_side": size, "side_step": 0, "margin": model.margin(size)}
    num_classes = ckpt.num_classes if ckpt is not None else max(model.num_classes, 2)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": dict(model.config),
        "in_channels": model.in_channels,
        "logit_channels": model.num_classes,
        "num_classes": num_classes,
        "class_names": list(ckpt.class_names) if ckpt is not None else default_class_names(num_classes),
        "activation": "sigmoid" if model.num_classes == 1 else "softmax",
        "normalization": dict(ckpt.normalization) if ckpt is not None else None,
        "input": {"layout": "NCHW", "dtype": "float32", **rule, **({"fixed_side": size} if size else {})},
    }
    if ckpt is not None:
        meta["epoch"] = ckpt.epoch
    return meta


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines, its log lines about optional packages (torchvision) and its
    deprecation warnings; errors still propagate."""
    names = ("torch.onnx", "torch.export", "torch.__trace", "torch.fx.experimental.symbolic_shapes", "onnxscript",
             "onnx_ir")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _summary(err: Exception, limit: int = 800) -> str:
    """The gist of an exporter error (its messages embed whole graphs): the exception summary, shortened."""
    text = str(err)
    if "Exception summary" in text:
        text = text.split("Exception summary", 1)[1]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _example_and_shapes(model: SegmentationModel, size: int | None) -> tuple[torch.Tensor, tuple[dict[int, Any]]]:
    """An example input for the exporter and the dynamic shapes of its axes: the batch always; height and width
    along :func:`size_rule` unless ``size`` fixes them."""
    from torch.export import Dim

    batch = Dim("batch", min=1)
    if size is not None:
        # positional: whatever forward calls its argument
        return torch.zeros(2, model.in_channels, size, size), ({0: batch},)
    rule = size_rule(model)
    first, step = rule["min_side"], rule["side_step"]
    sides = []
    for axis in ("height", "width"):
        if step == 1:
            sides.append(Dim(axis, min=first))
        elif first % step == 0:
            sides.append(step * Dim(f"{axis}_steps", min=first // step))
        else:
            sides.append(step * Dim(f"{axis}_steps", min=0) + first)
    example = torch.zeros(2, model.in_channels, first + 2 * step, first + 3 * step)
    return example, ({0: batch, 2: sides[0], 3: sides[1]},)


def _run_exporter(model: SegmentationModel, opset: int, size: int | None) -> Any:
    """The exporter's ONNX program of ``model`` in evaluation mode (its training mode is restored after)."""
    was_training = model.training
    model.eval()
    try:
        example, shapes = _example_and_shapes(model, size)
        with _quiet_exporter(), torch.no_grad():
            return torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=shapes, opset_version=opset,
                                     input_names=["image"], output_names=["logits"], optimize=True, verbose=False)
    except ExportError:
        raise
    except Exception as err:  # the exporter raises many types; report them as one
        raise ExportError(f"ONNX export of model {model.config.get('name')!r} failed: {_summary(err)}") from err
    finally:
        model.train(was_training)


def _finish(proto: Any, model: SegmentationModel, opset: int, metadata: dict[str, Any] | None) -> Any:
    """Check the opset the exporter produced, drop its per-node stack traces, attach ``metadata``."""
    produced = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if produced != opset:  # the exporter falls back to its own opset when it cannot convert, with only a warning
        raise ExportError(f"the exporter could not convert the graph of model {model.config.get('name')!r} to "
                          f"opset {opset} (it produced opset {produced}); choose another --opset")
    for node in proto.graph.node:  # the exporter's per-node stack traces: paths of this machine, not for deployment
        node.ClearField("metadata_props")
    if metadata is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return proto


def export_model(model: SegmentationModel, metadata: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET,
                 size: int | None = None) -> Any:
    """The ONNX graph (an ``onnx.ModelProto``) of ``model`` in evaluation mode, float32.

    Args:
        model: the network (its weights are copied into the graph; the model itself is not changed).
        metadata: stored as the JSON metadata property :data:`METADATA_KEY` when given.
        opset: the ONNX (ai.onnx) opset version.
        size: export for fixed ``size`` x ``size`` inputs (batch still dynamic); None: dynamic height and width
            following :func:`size_rule`.

    Returns:
        The graph, without the exporter's per-node stack traces.

    Raises:
        ExportError: onnx/onnxscript missing, a size the network does not accept, or an export failure.
    """
    require("onnx")
    require("onnxscript")
    _check_size(model, size)
    program = _run_exporter(model, opset, size)
    return _finish(program.model_proto, model, opset, metadata)


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, opset: int = DEFAULT_OPSET,
                      size: int | None = None) -> Path:
    """Export the network of a checkpoint to an ONNX file, with :func:`onnx_metadata`, checked by
    ``onnx.checker`` and written atomically (one self-contained file).

    Raises:
        CheckpointError: missing or invalid checkpoint.
        ExportError: ``output`` not ending in ``.onnx`` or equal to the checkpoint, onnx missing, export failure
            or a graph the checker rejects (the message names the file).
    """
    output = Path(output)
    checkpoint = resolve_checkpoint(checkpoint)
    if output.suffix.lower() != ".onnx":
        raise ExportError(f"{output}: the output file name must end in .onnx")
    if output.exists() and output.resolve() == Path(checkpoint).resolve():
        raise ExportError(f"{output}: would overwrite the checkpoint")
    onnx = require("onnx")
    ckpt = load_checkpoint(checkpoint)
    model = build_model(ckpt).float()
    meta = onnx_metadata(model, ckpt, size)
    meta["source"] = Path(checkpoint).name
    proto = export_model(model, meta, opset, size)
    with atomic_path(output) as tmp:
        onnx.save_model(proto, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as err:
            raise ExportError(f"{output}: the exported graph fails onnx.checker: {err}") from err
    return output


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The :data:`METADATA_KEY` document of an ONNX file written by :func:`export_checkpoint`.

    Raises:
        ExportError: missing or unreadable file, or no unetseg metadata in it.
    """
    path = Path(path)
    onnx = require("onnx")
    if not path.is_file():
        raise ExportError(f"{path}: ONNX file not found")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # protobuf decode errors have no common base class
        raise ExportError(f"{path}: not a readable ONNX file ({err})") from err
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ExportError(f"{path}: ONNX file without {METADATA_KEY!r} metadata")
    meta = json.loads(props[METADATA_KEY])
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: metadata format {meta.get('format')!r} is not {FORMAT!r}")
    return meta
