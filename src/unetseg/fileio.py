"""Atomic file writing: write a temporary file in the destination folder, then rename it into place.

A file written here is either complete or absent: the temporary file (``.NAME.XXXXXXXX.tmp`` beside ``NAME``) is
renamed over the destination only when writing succeeded, and removed otherwise. A process killed while writing
can still leave a temporary file behind; :func:`remove_stale_temporaries` clears those. Written files get the
permissions of an ordinary file (``0o666`` less the process's umask), not the ``0o600`` of a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator

#: the temporary files :func:`atomic_path` creates: ``.{name}.{random}.tmp``
TEMPORARY_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<random>[A-Za-z0-9_]+)\.tmp$")

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's file-mode creation mask (read without changing it for other threads)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode an ordinary new file gets: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def _attach_filename(err: BaseException, path: Path) -> None:
    """Name ``path`` in an OSError with an error number that names no file (a writer that only says "No space left
    on device"); one without an error number keeps its message as it is."""
    if isinstance(err, OSError) and err.filename is None and err.errno is not None and err.strerror:
        with contextlib.suppress(AttributeError, TypeError):
            err.filename = str(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    The written file gets the mode ``0o666`` less the umask. An OSError with an error number that names no file (for example a full
    disk reported by an encoder) is given ``path`` as its ``filename``, so that its message can say which file
    could not be written.

    Example:
        >>> with atomic_path("out.png") as tmp:  # doctest: +SKIP
        ...     image.save(tmp, format="PNG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _attach_filename(err, path)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def is_temporary(path: str | os.PathLike) -> bool:
    """True when the name of ``path`` is one :func:`atomic_path` gives its temporary files."""
    return TEMPORARY_PATTERN.match(Path(path).name) is not None


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in ``folder`` (not in its subfolders).

    Call it before writing into ``folder`` again (the start of a run, of a prediction), when no other process is
    writing there. Only regular files named like :func:`atomic_path`'s temporaries (``.NAME.XXXXXXXX.tmp``) are
    removed; a missing folder removes nothing.

    Returns:
        The files removed, sorted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if is_temporary(path) and path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
