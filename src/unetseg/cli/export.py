"""``unetseg export``: the network of a checkpoint as an ONNX file for deployment."""

from __future__ import annotations

import argparse

from ..export import DEFAULT_OPSET, export_checkpoint, read_onnx_metadata


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint's network to ONNX",
                       description="Write the network as an ONNX graph (input 'image': normalised float32 NCHW; "
                                   "output 'logits') with a dynamic batch and dynamic height/width following the "
                                   "model's input-size rule, and the classes, normalisation and model configuration "
                                   "as JSON metadata (key 'unetseg'). Needs pip install unetseg[onnx].")
    p.add_argument("checkpoint", help="a .safetensors checkpoint (e.g. RUN_DIR/best.safetensors)")
    p.add_argument("output", help="the ONNX file to write (name ending in .onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset version (default {DEFAULT_OPSET})")
    p.add_argument("--size", type=int,
                   help="export for fixed SIZE x SIZE inputs (an accepted input side) instead of dynamic sizes")


def run(args: argparse.Namespace) -> int:
    path = export_checkpoint(args.checkpoint, args.output, opset=args.opset, size=args.size)
    meta = read_onnx_metadata(path)
    rule = meta["input"]
    sizes = (f"{rule['fixed_side']} x {rule['fixed_side']}" if "fixed_side" in rule else
             f"sides {rule['min_side']} + k*{rule['side_step']}")
    crop = f" - {2 * rule['margin']}" if rule["margin"] else ""
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}): image (N, {meta['in_channels']}, "
          f"H, W) with {sizes} -> logits (N, {meta['logit_channels']}, H{crop}, W{crop}), {meta['activation']}; "
          f"classes {', '.join(meta['class_names'])}")
    return 0
