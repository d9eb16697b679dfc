"""The entry point of the ``unetseg`` console script and of ``python -m unetseg``.

It imports nothing heavy itself: the command line (and with it torch and the whole package) is imported inside
:func:`main`, so that a Ctrl-C while it loads ends with ``unetseg: interrupted`` and exit status 130, not a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Import and run the command line (:func:`unetseg.cli.main.main`); returns its exit status, 130 when
    interrupted before it could handle the interruption itself."""
    try:
        from .main import main as run_command_line

        return run_command_line(argv)
    except KeyboardInterrupt:
        print("unetseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
