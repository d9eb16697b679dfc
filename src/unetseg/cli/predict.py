"""``unetseg predict``: label images for new images."""

from __future__ import annotations

import argparse

from ..config import PredictConfig, validate_predict
from ..inference.files import predict
from .options import add_arguments, options_from_args

#: the dataclasses whose fields are this subcommand's arguments
OPTIONS = (PredictConfig,)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand with a flag for every field of :class:`PredictConfig`."""
    p = sub.add_parser("predict", help="segment images with a checkpoint",
                       description="Write one label image per input (same stem; 0/255 for binary models): PNG, "
                                   "TIFF or OME-Zarr (--format); with --rois also an ImageJ/Fiji ROI zip of the "
                                   "objects.")
    add_arguments(p, *OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Check the options and write the predictions; returns 0.

    Raises:
        ConfigError: a bad option, or an --output that would replace input images or (without --overwrite)
            earlier outputs; nothing is written then.
        DataError: bad inputs; or images that could not be predicted, named after every other one was written.
        CheckpointError: a missing or invalid checkpoint.
    """
    o = options_from_args(args, PredictConfig)
    validate_predict(o)
    written = predict(o.checkpoint, o.input, o.output, overlays=o.overlay, device=o.device, progress=True,
                      probabilities=o.probabilities, tile=o.tile, overlap=o.overlap, blending=o.blending, tta=o.tta,
                      batch_size=o.batch_size, min_size=o.min_size, fill=o.fill_holes, instances=o.instances,
                      block=o.block, halo=o.halo, overwrite=o.overwrite, precision=o.precision, backend=o.backend,
                      compile=o.compile, format=o.format, rois=o.rois, channel=o.channel, plane=o.plane,
                      memory_budget=o.memory_budget, dask=o.dask, scheduler=o.scheduler,
                      dask_workers=o.dask_workers, instance_threshold=o.instance_threshold,
                      seed_threshold=o.seed_threshold)
    print(f"{len(written)} label image(s) in {o.output}")
    return 0
