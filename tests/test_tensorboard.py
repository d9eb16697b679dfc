"""TensorBoard logging (``--tensorboard``): the event files of a tiny run read back with TensorBoard's own event
reader (one scalar per log column and epoch, with the logged values; the validation images with their truth and
prediction), and the callback alone over five epochs (images at the first epoch, every N epochs and the last)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from unetseg import train
from unetseg.cli.main import build_parser
from unetseg.cli.options import config_from_args
from unetseg.config import ConfigError
from unetseg.data.io import read_image
from unetseg.engine.callbacks.tensorboard import TensorBoard, chosen_images, scalar_tag
from unetseg.models import create_model

from conftest import tiny_config

pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (pip install unetseg[tensorboard])")


def read_events(folder: Path):
    """TensorBoard's own reader of the event files in ``folder``, every event kept."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_tags_and_chosen_images():
    assert [scalar_tag(k) for k in ("train_loss", "lr", "val_mean_iou", "seconds")] == [
        "train/loss", "train/lr", "val/mean_iou", "time/seconds"]
    assert chosen_images(10) == [0, 4, 9] and chosen_images(2) == [0, 1] and chosen_images(0) == []


def test_flags_reach_the_config():
    config = config_from_args(build_parser().parse_args(["train", "--tensorboard", "--tensorboard-images-every", "3"]))
    assert config.train.tensorboard is True and config.train.tensorboard_images_every == 3


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when not installed
    with pytest.raises(ConfigError, match=r"pip install unetseg\[tensorboard\]"):
        TensorBoard()


def test_event_files_of_a_tiny_run_read_back(tiny_data, tmp_path):
    config = tiny_config(tiny_data, tmp_path, epochs=1)
    config.train.tune_prediction, config.train.tensorboard = False, True
    result = train(config, progress=False)
    events = read_events(result.run_dir / "tensorboard")
    for key, tag in (("train_loss", "train/loss"), ("lr", "train/lr"), ("val_loss", "val/loss"),
                     ("val_foreground_dice", "val/foreground_dice")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1]
        np.testing.assert_allclose([e.value for e in logged], [row[key] for row in result.history], rtol=1e-6)
    tags = events.Tags()["images"]
    assert len(tags) == 2  # a quarter of the 8 images validate: both are shown
    for tag in tags:
        logged = events.Images(tag)
        assert [e.step for e in logged] == [1]  # the first epoch, which is the last: once
        picture = np.asarray(Image.open(io.BytesIO(logged[-1].encoded_image_string)).convert("RGB"))
        assert picture.shape == (48, 3 * 48 + 8, 3)
        shown, truth = picture[:, :48], picture[:, 52:100]
        mask = read_image(tiny_data / "masks" / f"{tag.split('/', 1)[1]}.png") > 0
        np.testing.assert_array_equal((truth != shown).any(axis=2), mask)  # the truth blended where it is


def test_images_every_n_epochs_and_after_the_last(tmp_path):
    model = create_model("unet_bn", in_channels=1, num_classes=2, base_channels=4, depth=2)
    rng = np.random.default_rng(0)
    data = SimpleNamespace(val_images=[rng.standard_normal((1, 16, 16)).astype(np.float32)],
                           val_labels=[np.zeros((16, 16), np.uint8)], val_names=["a"], ignore_index=None)
    run = SimpleNamespace(run_dir=tmp_path, data=data, model=model, precision="fp32", device=torch.device("cpu"))
    state = SimpleNamespace(epoch=0)
    callback = TensorBoard(images_every=2)
    callback.on_start(run, state)
    for epoch in range(1, 6):
        state.epoch = epoch
        callback.on_epoch_end(run, state, {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": float("nan")})
    callback.on_end(run, state)
    events = read_events(tmp_path / "tensorboard")
    assert [e.step for e in events.Images("val_images/a")] == [1, 2, 4, 5]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(k, pytest.approx(1 / k)) for k in range(1, 6)]
    assert "val/loss" not in events.Tags()["scalars"]  # NaN is not logged
    assert model.training  # left in training mode
