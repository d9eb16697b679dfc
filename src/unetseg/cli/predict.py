"""``unetseg predict``: label images for new images."""

from __future__ import annotations

import argparse

from ..predict import predict


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment images with a checkpoint",
                       description="Write one label PNG per input (same stem; 0/255 for binary models).")
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint (e.g. RUN_DIR/best.safetensors)")
    p.add_argument("--input", required=True, nargs="+", help="image files and/or folders of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    p.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    written = predict(args.checkpoint, args.input, args.output, overlays=args.overlay, device=args.device,
                      progress=True)
    print(f"{len(written)} label image(s) in {args.output}")
    return 0
