"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform


def machine() -> str:
    """CPU model and core count (Linux), or the platform string elsewhere."""
    try:
        models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        return f"{models[0]}, {len(models)} cores"
    except (OSError, IndexError):
        return platform.platform()
