"""Options that choose what of a multi-plane or multi-channel image is read; the same fields serve training
(``data.channel``, ``data.plane``), ``unetseg predict`` and ``unetseg inspect``."""

from __future__ import annotations

from typing import Any

from .options import option


def channel_option() -> Any:
    """The ``channel`` field: which channels of an image to read (None: every channel)."""
    return option(None, metavar="INDEX",
                  help="the channel(s) of multi-channel images to read, e.g. 1, or 0 2 (an OME/ImageJ channel axis "
                       "or RGB; one with more channels than the network takes needs it; default: every channel)")


def plane_option() -> Any:
    """The ``plane`` field: which plane of an image with several to read (None: the only one)."""
    return option(None, ge=0,
                  help="the plane of images with several (Z slice or time point of OME-TIFF, OME-Zarr, ImageJ "
                       "stacks, counted over T and Z in file order); default: the only plane, several are an error")
