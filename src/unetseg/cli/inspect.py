"""``unetseg inspect``: print a dataset's fingerprint and every problem found."""

from __future__ import annotations

import argparse

from ..data.inspect import format_fingerprint, inspect_dataset, write_fingerprint
from ..data.layouts import LAYOUTS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarise a dataset and list its problems",
                       description="Counts, image sizes, channels, dtypes, class pixel frequencies, intensity "
                                   "percentiles, objects per image, and every problem found (unpaired, missing or "
                                   "unreadable files, size mismatches, empty masks, ...).")
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("--layout", default="auto", choices=("auto",) + LAYOUTS,
                   help="dataset layout (default: detect from the folder contents)")
    p.add_argument("--json", metavar="PATH", help="also write the fingerprint as JSON")
    p.add_argument("--num-classes", type=int, help="classes incl. background (default: from the layout / masks)")
    p.add_argument("--instances", action="store_true", help="folder layout: also read labels/ instance images")
    p.add_argument("--mask-suffix", default="", help="folder layout: masks/<stem><suffix>.* pairs images/<stem>.*")
    p.add_argument("--split", help="voc / cityscapes split (default: train)")


def run(args: argparse.Namespace) -> int:
    """Print the fingerprint; returns 0 (problems are reported, not an error status)."""
    fp = inspect_dataset(args.data, args.layout, num_classes=args.num_classes, instances=args.instances,
                         mask_suffix=args.mask_suffix, split=args.split)
    print(format_fingerprint(fp))
    if args.json:
        write_fingerprint(fp, args.json)
        print(f"fingerprint written to {args.json}")
    return 0
