"""Exports of a trained network for other tools: ONNX (:mod:`.onnx`) and bioimage.io model packages
(:mod:`.bioimageio`)."""

from .bioimageio import DEFAULT_AUTHOR, DEFAULT_LICENSE, PackageInfo, export_bioimageio, require_bioimageio
from .onnx import (DEFAULT_OPSET, METADATA_KEY, ExportError, export_checkpoint, export_model, onnx_metadata,
                   read_onnx_metadata, require, size_rule)

#: what ``unetseg export --format`` writes
EXPORT_FORMATS = ("onnx", "bioimageio")

__all__ = ["DEFAULT_AUTHOR", "DEFAULT_LICENSE", "DEFAULT_OPSET", "EXPORT_FORMATS", "METADATA_KEY", "ExportError",
           "PackageInfo", "export_bioimageio", "export_checkpoint", "export_model", "onnx_metadata",
           "read_onnx_metadata", "require", "require_bioimageio", "size_rule"]
