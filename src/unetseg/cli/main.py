"""The ``unetseg`` command line: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..config import ConfigError
from ..data.io import DataError
from ..checkpoint import CheckpointError
from ..export import ExportError
from . import demo, evaluate, export, inspect, models, predict, train

COMMANDS = {"train": train, "predict": predict, "evaluate": evaluate, "inspect": inspect, "models": models,
            "export": export, "demo": demo}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="unetseg", description="U-Net image segmentation: train, predict, evaluate.")
    parser.add_argument("--version", action="version", version=f"unetseg {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", force=True)
    try:
        return COMMANDS[args.command].run(args)
    except (ConfigError, DataError, CheckpointError, ExportError) as err:
        print(f"unetseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unetseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
