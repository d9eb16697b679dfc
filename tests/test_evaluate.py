"""Evaluation of label folders against hand-computed metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from unetseg.data.io import DataError
from unetseg.evaluate import evaluate_folders, format_report, write_report


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_hand_computed_binary_report(tmp_path):
    # image a: truth 2 fg of 4, prediction hits 1 and adds 1 false positive -> TP 1, FN 1, FP 1, TN 1
    save(tmp_path / "truth" / "a.png", np.array([[255, 255], [0, 0]]))
    save(tmp_path / "pred" / "a.png", np.array([[255, 0], [255, 0]]))
    # image b: all background, predicted right -> TN 4
    save(tmp_path / "truth" / "b.png", np.zeros((2, 2)))
    save(tmp_path / "pred" / "b.png", np.zeros((2, 2)))
    save(tmp_path / "pred" / "b_overlay.png", np.zeros((2, 2)))  # ignored
    report = evaluate_folders(tmp_path / "pred", tmp_path / "truth")
    a = report["per_image"]["a"]
    assert a["pixel_accuracy"] == pytest.approx(0.5)
    assert a["dice"] == pytest.approx([0.5, 0.5]) and a["iou"] == pytest.approx([1 / 3, 1 / 3])
    b = report["per_image"]["b"]
    assert b["pixel_accuracy"] == 1.0 and np.isnan(b["dice"][1])  # foreground absent from both: undefined
    d = report["dataset"]  # summed matrix [[5, 1], [1, 1]]
    assert d["pixel_accuracy"] == pytest.approx(6 / 8)
    assert d["dice"] == pytest.approx([10 / 12, 2 / 4])
    assert d["mean_class_accuracy"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert d["fw_iou"] == pytest.approx(6 / 8 * 5 / 7 + 2 / 8 * 1 / 3)
    assert report["mean_per_image"]["pixel_accuracy"] == pytest.approx(0.75)
    assert report["mean_per_image"]["foreground_dice"] == pytest.approx(0.5)  # b's NaN is left out
    write_report(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["per_image"]["b"]["dice"][1] is None
    table = format_report(report)
    assert "[dataset]" in table and "0.5000" in table


def test_missing_prediction_is_named(tmp_path):
    save(tmp_path / "truth" / "masks" / "a.png", np.zeros((2, 2)))
    save(tmp_path / "truth" / "masks" / "c.png", np.zeros((2, 2)))
    save(tmp_path / "pred" / "a.png", np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"no prediction .*c\.png"):
        evaluate_folders(tmp_path / "pred", tmp_path / "truth")


def test_size_mismatch(tmp_path):
    save(tmp_path / "truth" / "a.png", np.zeros((2, 2)))
    save(tmp_path / "pred" / "a.png", np.zeros((2, 3)))
    with pytest.raises(DataError, match="expected the same size"):
        evaluate_folders(tmp_path / "pred", tmp_path / "truth")
