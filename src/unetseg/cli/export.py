"""``unetseg export``: the network of a checkpoint as an ONNX file for deployment."""

from __future__ import annotations

import argparse

from ..config import ExportConfig
from ..export import export_checkpoint, read_onnx_metadata
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (ExportConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand with an argument for every field of :class:`ExportConfig`."""
    p = sub.add_parser("export", help="export a checkpoint's network to ONNX",
                       description="Write the network as an ONNX graph (input 'image': normalised float32 NCHW; "
                                   "output 'logits') with a dynamic batch and dynamic height/width following the "
                                   "model's input-size rule, and the classes, normalisation and model configuration "
                                   "as JSON metadata (key 'unetseg'). Needs pip install unetseg[onnx].")
    add_arguments(p, *OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Export and print what the ONNX file takes and gives; returns 0."""
    o = options_from_args(args, ExportConfig)
    path = export_checkpoint(o.checkpoint, o.output, opset=o.opset, size=o.size)
    meta = read_onnx_metadata(path)
    rule = meta["input"]
    sizes = (f"{rule['fixed_side']} x {rule['fixed_side']}" if "fixed_side" in rule else
             f"sides {rule['min_side']} + k*{rule['side_step']}")
    crop = f" - {2 * rule['margin']}" if rule["margin"] else ""
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {o.opset}): image (N, {meta['in_channels']}, "
          f"H, W) with {sizes} -> logits (N, {meta['logit_channels']}, H{crop}, W{crop}), {meta['activation']}; "
          f"classes {', '.join(meta['class_names'])}")
    return 0
