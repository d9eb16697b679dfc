"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def link_file(src: Path, dest: Path, layout: str = "see the dataset's README") -> None:
    """A symbolic link ``dest`` -> ``src`` (the data stays where it lies); SystemExit naming ``src`` when it is
    missing, with ``layout`` saying what was expected."""
    if not src.is_file():
        raise SystemExit(f"{src}: missing; {layout}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dest)


def machine() -> str:
    """CPU model and core count (Linux), or the platform string elsewhere."""
    try:
        models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        return f"{models[0]}, {len(models)} cores"
    except (OSError, IndexError):
        return platform.platform()
