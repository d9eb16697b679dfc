"""``unetseg inspect``: print a dataset's fingerprint and every problem found."""

from __future__ import annotations

import argparse

from ..config import InspectConfig
from ..data.inspect import format_fingerprint, inspect_dataset, write_fingerprint
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (InspectConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` subcommand with an argument for every field of :class:`InspectConfig`."""
    p = sub.add_parser("inspect", help="summarise a dataset and list its problems",
                       description="Counts, image sizes, channels, dtypes, class pixel frequencies, intensity "
                                   "percentiles, objects per image, and every problem found (unpaired, missing or "
                                   "unreadable files, size mismatches, empty masks, ...).")
    add_arguments(p, *OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Print the fingerprint; returns 0 (problems are reported, not an error status)."""
    o = options_from_args(args, InspectConfig)
    fp = inspect_dataset(o.data, o.layout, num_classes=o.num_classes, instances=o.instances,
                         mask_suffix=o.mask_suffix, split=o.split, channel=o.channel, plane=o.plane)
    print(format_fingerprint(fp))
    if o.json:
        write_fingerprint(fp, o.json)
        print(f"fingerprint written to {o.json}")
    return 0
