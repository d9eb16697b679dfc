"""Exports of a trained network for other tools: ONNX (:mod:`.onnx`)."""

from .onnx import (DEFAULT_OPSET, METADATA_KEY, ExportError, export_checkpoint, export_model, onnx_metadata,
                   read_onnx_metadata, require, size_rule)

__all__ = ["DEFAULT_OPSET", "METADATA_KEY", "ExportError", "export_checkpoint", "export_model", "onnx_metadata",
           "read_onnx_metadata", "require", "size_rule"]
