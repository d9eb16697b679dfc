"""``unetseg export``: the network of a checkpoint as an ONNX file for deployment, or as a bioimage.io model
package."""

from __future__ import annotations

import argparse
import logging

from ..config import ExportConfig
from ..export import DEFAULT_AUTHOR, PackageInfo, export_bioimageio, export_checkpoint, read_onnx_metadata
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (ExportConfig,)

log = logging.getLogger("unetseg")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand with an argument for every field of :class:`ExportConfig`."""
    p = sub.add_parser("export", help="export a checkpoint's network to ONNX or as a bioimage.io model package",
                       description="Write the network as an ONNX graph (input 'image': normalised float32 NCHW; "
                                   "output 'logits') with a dynamic batch and dynamic height/width following the "
                                   "model's input-size rule, and the classes, normalisation and model configuration "
                                   "as JSON metadata (key 'unetseg'); needs pip install unetseg[onnx]. Or, with "
                                   "--format bioimageio or an OUTPUT ending in .zip, a bioimage.io model package "
                                   "(model spec 0.5: TorchScript and ONNX weights, test tensors, cover, README, the "
                                   "normalisation as preprocessing); needs pip install unetseg[bioimageio].")
    add_arguments(p, *OPTIONS)


def export_format(options: ExportConfig) -> str:
    """What ``unetseg export`` writes: ``--format``, else ``bioimageio`` for an OUTPUT ending in .zip, else
    ``onnx``."""
    if options.format is not None:
        return options.format
    return "bioimageio" if options.output.lower().endswith(".zip") else "onnx"


def _run_bioimageio(o: ExportConfig) -> int:
    """Write the bioimage.io package and print what it holds; returns 0."""
    if not o.authors:
        log.info("no --author given: the package names %r as its author", DEFAULT_AUTHOR)
    info = PackageInfo(o.name, o.description, o.authors or (), o.license, {k: str(v) for k, v in o.cite.items()})
    path = export_bioimageio(o.checkpoint, o.output, info, image=o.image, size=o.size, opset=o.opset)
    kind = "zip" if path.is_file() else "folder"
    print(f"wrote {path} (bioimage.io model package, {kind}: TorchScript and ONNX weights, test tensors, cover, "
          f"README.md); check it with: bioimageio test {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Export and print what the file takes and gives; returns 0."""
    o = options_from_args(args, ExportConfig)
    if export_format(o) == "bioimageio":
        return _run_bioimageio(o)
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
