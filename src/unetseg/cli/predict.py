"""``unetseg predict``: label images for new images."""

from __future__ import annotations

import argparse

from ..compilation import compile_unavailable_reason
from ..config import ConfigError
from ..inference.backends import BACKENDS
from ..inference.postprocess import INSTANCE_METHODS
from ..inference.files import predict


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment images with a checkpoint",
                       description="Write one label PNG per input (same stem; 0/255 for binary models).")
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint (e.g. RUN_DIR/best.safetensors)")
    p.add_argument("--input", required=True, nargs="+", help="image files and/or folders of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile", type=int,
                   help="predict in tiles of this output size (default: the whole image in one pass); the paper's "
                        "valid U-Net uses overlap-tile, padded networks a blended sliding window")
    p.add_argument("--overlap", type=float, default=0.25, help="sliding window overlap fraction (default 0.25)")
    p.add_argument("--blending", choices=["gaussian", "constant"], default="gaussian")
    p.add_argument("--tta", choices=["none", "flips", "rot", "d4"],
                   help="test-time augmentation averaged over flips / rotations (d4 = all 8); default: what training "
                        "chose on its validation set (prediction.yaml), else none")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bfloat16 + channels-last where the device computes bf16 natively, else fp32")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="what runs the network: torch (default) or onnxruntime (its ONNX export, float32 on the "
                        "CPU; needs pip install unetseg[onnx])")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (torch backend; compiles once per tile shape, worth it for "
                        "many images or tiles of one size)")
    p.add_argument("--block", type=int,
                   help="predict TIFF inputs block by block with bounded memory (a multiple of 256, e.g. 2048), for "
                        "images larger than memory; writes a tiled <stem>.tif")
    p.add_argument("--halo", type=int, default=64, help="with --block: context pixels around each block (default 64)")
    p.add_argument("--min-size", type=int,
                   help="remove objects smaller than this many pixels; default: what training chose on its "
                        "validation set (prediction.yaml), else 0")
    p.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    p.add_argument("--instances", choices=["auto", *INSTANCE_METHODS],
                   help="also write <stem>_instances.png (16-bit object labels): auto (the method training chose "
                        "on validation), connected components, a distance-transform watershed or a watershed "
                        "seeded at confident foreground, which split touching objects")
    p.add_argument("--probabilities", action="store_true", help="also write <stem>_prob.tif (float16, a page per class)")


def run(args: argparse.Namespace) -> int:
    if args.block is not None and (args.block < 256 or args.block % 256 or args.halo < 0):
        raise ConfigError(f"--block must be a positive multiple of 256 (got {args.block}) and --halo >= 0 "
                          f"(got {args.halo})")
    if args.tile is not None and args.tile < 1 or not 0 <= args.overlap < 1 or args.batch_size < 1:
        raise ConfigError(f"--tile must be >= 1 (got {args.tile}), --overlap in [0, 1) (got {args.overlap}), "
                          f"--batch-size >= 1 (got {args.batch_size})")
    if args.backend == "onnxruntime":
        clashes = [flag for flag, bad in (("--precision bf16", args.precision == "bf16"), ("--compile", args.compile),
                                          (f"--device {args.device}", args.device not in ("auto", "cpu"))) if bad]
        if clashes:
            raise ConfigError(f"--backend onnxruntime runs float32 on the CPU; it does not go with "
                              f"{', '.join(clashes)}")
    if args.compile and (reason := compile_unavailable_reason("cuda" if "cuda" in args.device else "cpu")):
        raise ConfigError(f"--compile: {reason}")
    written = predict(args.checkpoint, args.input, args.output, overlays=args.overlay, device=args.device,
                      progress=True, probabilities=args.probabilities, tile=args.tile, overlap=args.overlap,
                      blending=args.blending, tta=args.tta, batch_size=args.batch_size, min_size=args.min_size,
                      fill=args.fill_holes, instances=args.instances, block=args.block, halo=args.halo,
                      precision=args.precision, backend=args.backend, compile=args.compile)
    print(f"{len(written)} label image(s) in {args.output}")
    return 0
