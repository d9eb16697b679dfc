"""The entry point of the ``unetseg`` console script and of ``python -m unetseg``.

It imports nothing heavy itself: the command line (and with it torch and the whole package) is imported inside
:func:`main`, so that a Ctrl-C while it loads ends with ``unetseg: interrupted`` and exit status 130, not a
traceback. While those modules load, Ctrl-C only sets a flag: a KeyboardInterrupt raised inside the initialisation
of a compiled extension (torch's, for one) can abort the interpreter instead of unwinding.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence


def _load_command_line() -> Callable[[Sequence[str] | None], int] | None:
    """Import :func:`unetseg.cli.main.main` with Ctrl-C deferred; None when Ctrl-C came while it loaded."""
    interrupted: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda number, frame: interrupted.append(number))
    except ValueError:  # not the main thread: signals cannot be handled here, import as is
        previous = None
    try:
        from .main import main as run_command_line
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return None if interrupted else run_command_line


def main(argv: Sequence[str] | None = None) -> int:
    """Import and run the command line (:func:`unetseg.cli.main.main`); returns its exit status, 130 when
    interrupted before it could handle the interruption itself."""
    try:
        run_command_line = _load_command_line()
        if run_command_line is not None:
            return run_command_line(argv)
    except KeyboardInterrupt:
        pass
    print("unetseg: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
