"""The ``unetseg`` command line: one subcommand per module of this package.

Every failure ends with one line on stderr and an exit status:

- 0: done;
- 2: a problem with the input (a bad option, file, dataset or checkpoint, an output that cannot be written, a full
  disk): ``unetseg COMMAND: error: ...`` naming the file, key or value, what was expected and what to do;
- 1: an internal error (a bug): ``unetseg COMMAND: internal error (...)`` and the log file holding the traceback
  (:data:`LOG_DIR`);
- 130: interrupted (Ctrl-C).

``unetseg --debug COMMAND ...`` lets every exception through with its full traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..config import ConfigError
from ..data.io import DataError
from ..checkpoint import CheckpointError
from ..export import ExportError
from . import demo, evaluate, export, inspect, models, predict, report, train

COMMANDS = {"train": train, "predict": predict, "evaluate": evaluate, "inspect": inspect, "models": models,
            "export": export, "demo": demo, "report": report}

#: the errors whose message is meant for the user (exit status 2)
USER_ERRORS = (ConfigError, DataError, CheckpointError, ExportError)

#: where the traceback of an internal error is written
LOG_DIR = Path(tempfile.gettempdir()) / "unetseg"

#: functions in whose frames an OSError means that a file or folder could not be created or written
WRITING_FRAMES = frozenset({"mkdir", "makedirs", "mkstemp", "_mkstemp_inner", "mkdtemp", "write_text", "write_bytes",
                            "atomic_path", "atomic_write_text", "atomic_write_with"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="unetseg", description="U-Net image segmentation: train, predict, evaluate.")
    parser.add_argument("--version", action="version", version=f"unetseg {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true",
                        help="let errors through with their full traceback (for bug reports)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 internal error, 2 bad input, 130 interrupted).

    With ``--debug`` any exception propagates with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", force=True)
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print(f"unetseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        return report_failure(err, args.command, given_paths(parser, args, argv), argv)


def report_failure(err: Exception, command: str, paths: Sequence[tuple[str, str]] = (),
                   argv: Sequence[str] | None = None) -> int:
    """Print the one-line message of ``err`` for ``unetseg command`` on stderr; returns the exit status.

    A user error (:data:`USER_ERRORS`, an OSError, running out of memory) gives ``error: ...`` and 2; anything
    else is an internal error: its traceback goes to a log file under :data:`LOG_DIR`, which the message names,
    and the status is 1. ``paths`` are the ``(flag, value)`` pairs given on the command line (:func:`given_paths`),
    so that a message about a file can name the option it came from.
    """
    message = describe_user_error(err, paths)
    if message is not None:
        print(f"unetseg {command}: error: {message}", file=sys.stderr)
        return 2
    summary = one_line(f"{type(err).__name__}: {err}")
    try:
        log = write_error_log(err, command, argv)
    except OSError as log_err:
        print(f"unetseg {command}: internal error ({summary}); this is a bug: the traceback could not be written to "
              f"{LOG_DIR} ({log_err.strerror or log_err}); run again with --debug to see it", file=sys.stderr)
        return 1
    print(f"unetseg {command}: internal error ({summary}); this is a bug: the full traceback is in {log}",
          file=sys.stderr)
    return 1


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (runs of white space made one space), cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe_user_error(err: BaseException, paths: Sequence[tuple[str, str]] = ()) -> str | None:
    """The message for the user of an error they can fix, or None for an internal error."""
    if isinstance(err, USER_ERRORS):
        return str(err)
    if isinstance(err, OSError):
        return describe_os_error(err, paths)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        device = "GPU memory" if type(err).__name__ == "OutOfMemoryError" else "memory"
        return (f"out of {device} ({one_line(str(err), 160) or type(err).__name__}): use a smaller --batch-size, "
                "--patch-size or --tile, or a smaller model, and run again")
    return None


def write_error_log(err: BaseException, command: str, argv: Sequence[str] | None = None) -> Path:
    """Write the traceback of ``err`` (with the command line and versions) to a new file under :data:`LOG_DIR`.

    Raises:
        OSError: the log cannot be written.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    path, n = LOG_DIR / f"{stem}.log", 1
    while path.exists():
        path, n = LOG_DIR / f"{stem}-{n}.log", n + 1
    words = list(sys.argv[1:] if argv is None else argv)
    header = (f"unetseg {__version__} internal error in '{command}'\ncommand line: unetseg {' '.join(words)}\n"
              f"python {sys.version.split()[0]} on {sys.platform}\n\n")
    path.write_text(header + "".join(traceback.format_exception(type(err), err, err.__traceback__)))
    return path


def given_paths(parser: argparse.ArgumentParser, args: argparse.Namespace,
                argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``(flag, value)`` of every text value given to the subcommand ``args.command`` (one pair per item of a list
    value); the flag is the spelling used in ``argv`` (default ``sys.argv[1:]``), else the option's first one, or
    the argument's name for a positional one."""
    words = list(sys.argv[1:] if argv is None else argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    pairs = []
    for action in sub.choices[args.command]._actions:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        used = [o for o in action.option_strings if any(w == o or w.startswith(o + "=") for w in words)]
        flag = (used or action.option_strings or [(action.metavar or action.dest).upper()])[0]
        pairs += [(flag, str(v)) for v in values if isinstance(v, (str, os.PathLike))]
    return pairs


def _within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies in it (both absolute)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _where(filename: str, paths: Sequence[tuple[str, str]]) -> str:
    """``--flag VALUE`` for the given path that ``filename`` is, lies in or leads to (a folder created on the way),
    followed by ``(filename)`` when it is not the value itself; ``filename`` alone when no value matches."""
    target = os.path.abspath(filename)
    matches = [(flag, value) for flag, value in paths
               if _within(target, os.path.abspath(value)) or _within(os.path.abspath(value), target)]
    if not matches:
        return filename
    flag, value = max(matches, key=lambda pair: len(os.path.commonpath([target, os.path.abspath(pair[1])])))
    return f"{flag} {value}" + ("" if os.path.abspath(value) == target else f" ({filename})")


def _file_in_the_way(filename: str) -> Path | None:
    """The nearest existing path at or above ``filename`` when it is a file (where a folder is needed)."""
    for path in (Path(filename), *Path(filename).parents):
        if path.exists() or path.is_symlink():
            return None if path.is_dir() else path
    return None


def _while_writing(err: BaseException) -> bool:
    """True when ``err`` was raised while creating or writing a file or folder."""
    return any(frame.name in WRITING_FRAMES for frame in traceback.extract_tb(err.__traceback__))


def describe_os_error(err: OSError, paths: Sequence[tuple[str, str]] = ()) -> str:
    """The message of an OSError: the file (and the option it came from), the reason and what to do."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is None:
        return f"{reason}: check the paths given, free disk space and permissions, then run again"
    filename = os.fsdecode(err.filename)
    where, code = _where(filename, paths), err.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"disk full while writing {filename} ({reason}): free space and run again"
    if code == errno.EROFS:
        return f"{where}: cannot write there ({reason}): choose a folder on a writable disk"
    blocker = _file_in_the_way(filename) if code in (errno.EEXIST, errno.ENOTDIR) else None
    if blocker is not None:
        named = _where(str(blocker), paths)
        where, what = (named, "it") if " (" not in named else (where, str(blocker))
        return (f"{where}: {what} is an existing file, but a folder is needed there: give a folder path, or move "
                "the file away")
    if code in (errno.EACCES, errno.EPERM, errno.ENOENT) and _while_writing(err):
        return f"{where}: cannot write there ({reason}): choose a folder you can write to"
    if code in (errno.EACCES, errno.EPERM):
        return f"{where}: cannot read {filename} ({reason}): check its permissions"
    if code == errno.ENOENT:
        return f"{where}: not found ({reason}): check the path"
    if code == errno.EISDIR:
        return f"{where}: {filename} is a folder, but a file is needed: give a file path"
    return f"{where}: {reason}: check the path and run again"


if __name__ == "__main__":
    sys.exit(main())
