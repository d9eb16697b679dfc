"""The error type of bad input data (re-exported by :mod:`unetseg.data.io`, where callers import it from)."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data; the message names the file and says what was expected and what to do."""


def size_text(width: int, height: int) -> str:
    """``"64x64 pixels"``, or ``"100x64 pixels (width x height)"`` when the sides differ."""
    return f"{width}x{height} pixels" + ("" if width == height else " (width x height)")
