"""Masks with a 'not annotated' value (255): read, trained on without those pixels, and left out of metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unetseg import train
from unetseg.data.layouts import load_folder
from unetseg.data.io import DataError, read_image, write_png
from unetseg.engine.evaluate import evaluate_folders

from conftest import tiny_config


@pytest.fixture
def partly_annotated(tiny_data, tmp_path):
    """Three classes (background, nucleus, a band of 'other' on the left), and 255 on the top rows."""
    root = tmp_path / "data"
    for path in sorted((tiny_data / "images").iterdir()):
        mask = (read_image(tiny_data / "masks" / path.name) > 0).astype(np.uint8)
        mask[:, :6] = 2
        mask[:5] = 255
        write_png(root / "images" / path.name, read_image(path))
        write_png(root / "masks" / path.name, mask)
    return root


def test_loader_keeps_the_ignore_value(partly_annotated):
    with pytest.raises(DataError, match="255"):
        load_folder(partly_annotated, num_classes=3)
    data = load_folder(partly_annotated, ignore_index=255)
    assert data.num_classes == 3  # 255 does not count as a class
    assert (data.samples[0].labels[:5] == 255).all() and data.samples[0].labels.max() == 255


def test_training_and_metrics_leave_ignored_pixels_out(partly_annotated, tmp_path):
    config = tiny_config(partly_annotated, tmp_path / "runs", epochs=1)
    config.data.ignore_index = 255
    result = train(config, progress=False)
    assert np.isfinite(result.history[0]["train_loss"]) and np.isfinite(result.history[0]["val_loss"])
    # evaluation: changing the prediction on ignored pixels changes nothing
    pred_dir = tmp_path / "pred"
    for path in sorted((partly_annotated / "masks").iterdir()):
        truth = read_image(path)
        pred = np.where(truth == 255, 0, truth).astype(np.uint8)
        write_png(pred_dir / path.name, pred)
    report = evaluate_folders(pred_dir, partly_annotated, ignore_index=255)
    assert report["dataset"]["pixel_accuracy"] == 1.0
    for path in sorted(pred_dir.iterdir()):
        pred = read_image(path).copy()
        pred[:5] = 1  # wrong class, but only where nothing is annotated
        write_png(path, pred)
    assert evaluate_folders(pred_dir, partly_annotated, ignore_index=255)["dataset"]["pixel_accuracy"] == 1.0
    assert torch.isfinite(torch.tensor(result.history[0]["val_mean_iou"]))
