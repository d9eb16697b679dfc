"""``train.tensorboard``: the run logged for TensorBoard, in ``RUN_DIR/tensorboard``.

Every epoch: each number of the epoch's log row as a scalar (``train/loss``, ``train/lr``, ``val/loss``,
``val/foreground_dice``, ... and ``time/seconds``), at the epoch as the step. At the first epoch, every
``train.tensorboard_images_every`` epochs and after the last: a few fixed validation images (spread over the
validation set) as one picture each, ``val_images/<name>``: the image, the truth and the prediction side by side,
the classes blended over the image as in ``unetseg predict --overlay``. View them with
``tensorboard --logdir RUN_DIR/tensorboard``. Needs the ``tensorboard`` package (``pip install
unetseg[tensorboard]``); written by the first process of a distributed run only.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from ...config import ConfigError
from ...distributed import rank_and_world
from ...inference.outputs import display_image, overlay
from ...models.apply import logits_to_labels, padded_forward
from ...precision import autocast
from ..state import Run, TrainState
from .base import Callback

log = logging.getLogger("unetseg")

#: the folder of the event files in the run directory
FOLDER = "tensorboard"
#: how many validation images are logged
IMAGES = 3
#: the longest side of a logged picture (image, truth and prediction side by side), in pixels
MAX_SIDE = 1024


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a log column: ``train_loss`` -> ``train/loss``, ``lr`` -> ``train/lr``,
    ``val_mean_iou`` -> ``val/mean_iou``, anything else ``time/<key>``."""
    if key == "lr":
        return "train/lr"
    for prefix in ("train_", "val_"):
        if key.startswith(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return f"time/{key}"


def chosen_images(count: int, wanted: int = IMAGES) -> list[int]:
    """The indices of ``wanted`` validation images spread evenly over ``count`` (all of them when fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, wanted)})


def side_by_side(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, ignore_index: int | None = None
                 ) -> np.ndarray:
    """RGB uint8 (H, 3W + 8, 3): the image, the truth and the prediction (classes blended over the image), with a
    4-pixel white gap between them; ``image`` is (C, H, W) as the network takes it."""
    shown = np.moveaxis(np.asarray(image, np.float32), 0, -1)
    if ignore_index is not None:
        truth = np.where(truth == ignore_index, 0, truth)
    gap = np.full((truth.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([display_image(shown), gap, overlay(shown, truth), gap, overlay(shown, pred)], axis=1)


def _shrunk(picture: np.ndarray) -> np.ndarray:
    """``picture`` subsampled so that its longest side is at most :data:`MAX_SIDE`."""
    step = math.ceil(max(picture.shape[:2]) / MAX_SIDE)
    return picture[::step, ::step] if step > 1 else picture


class TensorBoard(Callback):
    """Logs the run for TensorBoard (see the module docstring); it writes files, so in a distributed run only the
    first process runs it.

    Args:
        images_every: log the validation images every this many epochs (and at the first and the last).

    Raises:
        ConfigError: the tensorboard package is not installed.
    """

    rank_zero_only = True

    def __init__(self, images_every: int = 5) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError("train.tensorboard (--tensorboard) needs the tensorboard package: pip install "
                              f"unetseg[tensorboard] ({err})") from err
        self.writer_type = SummaryWriter
        self.images_every = images_every
        self.writer: Any = None
        self.indices: list[int] = []
        self.logged_epoch = -1

    def on_start(self, run: Run, state: TrainState) -> None:
        """Open the event file (on the first process only); a resumed run drops the events of the epochs after the
        one it resumes from."""
        if rank_and_world()[0] != 0:
            return
        folder = run.run_dir / FOLDER
        self.writer = self.writer_type(log_dir=str(folder), purge_step=state.epoch + 1 if state.epoch else None)
        self.indices = chosen_images(len(run.data.val_images))
        log.info("TensorBoard: logging to %s (view it with: tensorboard --logdir %s)", folder, folder)

    def on_epoch_end(self, run: Run, state: TrainState, row: dict[str, Any]) -> None:
        """Log the epoch's numbers, and the validation images at the first epoch and every ``images_every``."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(scalar_tag(key), float(value), state.epoch)
        if state.epoch == 1 or state.epoch % self.images_every == 0:
            self.log_images(run, state.epoch)
        self.writer.flush()

    def on_end(self, run: Run, state: TrainState) -> None:
        """Log the validation images of the last epoch (unless logged already) and close the event file."""
        if self.writer is None:
            return
        if self.logged_epoch != state.epoch:
            self.log_images(run, state.epoch)
        self.writer.close()
        self.writer = None

    def log_images(self, run: Run, epoch: int) -> None:
        """Predict the chosen validation images with the network as it is and log them at step ``epoch``."""
        model, data = run.model, run.data
        model.eval()
        with torch.inference_mode():
            for i in self.indices:
                with autocast(run.precision, run.device):
                    logits = padded_forward(model, torch.from_numpy(data.val_images[i])[None].to(run.device))
                pred = logits_to_labels(logits.float())[0].cpu().numpy()
                picture = side_by_side(data.val_images[i], data.val_labels[i], pred, data.ignore_index)
                self.writer.add_image(f"val_images/{data.val_names[i]}", _shrunk(picture), epoch, dataformats="HWC")
        model.train()
        self.logged_epoch = epoch
