"""Evaluation of label folders against hand-computed metrics."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from PIL import Image

from unetseg.data.io import DataError
from unetseg.engine.evaluate import evaluate_folders, format_report, write_report


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


# Instance evaluation. Image "a" (4x6): true nuclei 1 and 2 touch, so the connected components of the true mask
# are one object; the prediction (uint16 labels) has 1 exact, 2 missing one pixel, and a false positive 3.
TRUE_A = np.array([[1, 1, 1, 2, 2, 2],
                   [1, 1, 1, 2, 2, 2],
                   [0, 0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0, 0]])
PRED_A = np.array([[1, 1, 1, 2, 2, 2],
                   [1, 1, 1, 2, 2, 0],
                   [0, 0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 3, 3]])


def write_png16(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint16)).save(path)


def instance_data(tmp_path, binary_pred=False):
    save(tmp_path / "data" / "masks" / "a.png", (TRUE_A > 0) * 255)
    save(tmp_path / "data" / "masks" / "b.png", np.zeros((4, 6)))  # "b": no nuclei, none predicted
    write_png16(tmp_path / "data" / "labels" / "a.png", TRUE_A)
    write_png16(tmp_path / "data" / "labels" / "b.png", np.zeros((4, 6)))
    if binary_pred:
        save(tmp_path / "pred" / "a.png", (PRED_A > 0) * 255)
        save(tmp_path / "pred" / "b.png", np.zeros((4, 6)))
    else:
        write_png16(tmp_path / "pred" / "a.png", PRED_A)
        write_png16(tmp_path / "pred" / "b.png", np.zeros((4, 6)))
    return tmp_path / "pred", tmp_path / "data"


def test_instances_with_true_labels(tmp_path):
    pred, data = instance_data(tmp_path)
    report = evaluate_folders(pred, data, instances=True, truth_instances=data / "labels")
    # semantic part unchanged: a has TP 11, FN 1 (pixel (1,5)), FP 2 -> foreground dice 22 / 25
    assert report["per_image"]["a"]["dice"][1] == pytest.approx(22 / 25)
    inst = report["instances"]
    a, b = inst["per_image"]["a"], inst["per_image"]["b"]
    # IoU(1, 1) = 6/6, IoU(2, 2) = 5/6 = 0.833; 3 is a false positive
    # t = 0.5 ... 0.8 (7 thresholds): TP 2, FP 1, FN 0 -> 2/3; t = 0.85, 0.9, 0.95: TP 1, FP 2, FN 1 -> 1/4
    assert (a["n_true"], a["n_pred"], a["tp_50"], a["fp_50"], a["fn_50"]) == (2, 3, 2, 1, 0)
    assert a["ap_per_threshold"] == pytest.approx([2 / 3] * 7 + [1 / 4] * 3)
    assert a["ap_50"] == pytest.approx(2 / 3) and a["ap"] == pytest.approx((7 * 2 / 3 + 3 / 4) / 10)  # 13/24
    assert a["f1_50"] == pytest.approx(2 * 2 / (2 + 3))
    assert a["aji"] == pytest.approx((6 + 5) / (6 + 6 + 2))  # unused prediction 3 adds its 2 pixels
    # Rand over the 12 true-foreground pixels: n = {(1,1): 6, (2,2): 5, (2,0): 1}; S = 30 + 20 = 50,
    # A = 30 + 30 = 60, B = 30 + 20 + 0 = 50 -> error = 1 - 100 / 110
    assert a["rand_error"] == pytest.approx(1 / 11)
    # VI: only true 2 is split (5 : 1), weight 1/2 -> 1/2 * H(5/6, 1/6) bits; nothing merged
    h = -(5 / 6 * np.log2(5 / 6) + 1 / 6 * np.log2(1 / 6))
    assert a["vi_split"] == pytest.approx(h / 2) and a["vi_merge"] == pytest.approx(0.0)
    # foreground boundaries: pred -> true: 11 zeros and 2, 2 (row 3 is 2 below row 1); true -> pred: 11 zeros
    # and 1 ((1,5) next to (0,5)) -> HD = 2; HD95 = max(2, 0.45) = 2
    assert a["hausdorff"] == 2.0 and a["hd95"] == pytest.approx(2.0)
    # b: no object on either side scores 1 (documented convention); identical empty masks: HD 0
    assert b["ap"] == b["f1_50"] == b["aji"] == 1.0 and b["hausdorff"] == 0.0 and np.isnan(b["rand_error"])
    assert inst["dsb_score"] == pytest.approx((13 / 24 + 1) / 2)
    assert inst["dsb_ap_per_threshold"] == pytest.approx([(2 / 3 + 1) / 2] * 7 + [(1 / 4 + 1) / 2] * 3)
    assert inst["mean_per_image"]["aji"] == pytest.approx((11 / 14 + 1) / 2)
    assert inst["mean_per_image"]["rand_error"] == pytest.approx(1 / 11)  # b's NaN left out
    assert inst["totals"] == {"n_true": 2, "n_pred": 3, "tp_50": 2, "fp_50": 1, "fn_50": 0}
    assert inst["dataset_f1_50"] == pytest.approx(4 / 5)
    table = format_report(report)
    assert "ap_50:95" in table and "DSB score" in table and "0.5417" in table
    write_report(report, tmp_path / "r.json")
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["instances"]["per_image"]["b"]["rand_error"] is None
    assert back["instances"]["per_image"]["a"]["ap"] == pytest.approx(13 / 24)


def test_instances_from_connected_components(tmp_path):
    pred, data = instance_data(tmp_path)
    # truth = components of the mask: one 12-pixel object; IoU with pred 1 = 6/12 (not above 0.5), pred 2 = 5/12
    a = evaluate_folders(pred, data, instances=True)["instances"]["per_image"]["a"]
    assert (a["n_true"], a["n_pred"], a["tp_50"]) == (1, 3, 0) and a["ap"] == 0.0
    assert a["aji"] == pytest.approx(6 / (12 + 5 + 2))  # true -> pred 1 (I 6, U 12), 2 and 3 unused
    # binary predictions are split into components: top 11 pixels and the 2 below
    pred, data = instance_data(tmp_path / "bin", binary_pred=True)
    report = evaluate_folders(pred, data, instances=True, truth_instances=data / "labels")
    a = report["instances"]["per_image"]["a"]
    # IoU(true 1, top) = 6/11 > 0.5 -> TP 1; IoU(true 2, top) = 5/12; FP 1 (the 2 pixels), FN 1
    assert (a["n_pred"], a["tp_50"], a["fp_50"], a["fn_50"]) == (2, 1, 1, 1) and a["ap_50"] == pytest.approx(1 / 3)
    assert report["per_image"]["a"]["dice"][1] == pytest.approx(22 / 25)  # same pixels as the uint16 labels


def test_instances_empty_prediction_and_errors(tmp_path):
    pred, data = instance_data(tmp_path)
    write_png16(pred / "a.png", np.zeros((4, 6)))  # nothing predicted where there are nuclei
    report = evaluate_folders(pred, data, truth_instances=data / "labels")  # implies instances
    inst = report["instances"]
    assert inst["per_image"]["a"]["hausdorff"] == np.inf and inst["hausdorff_infinite_images"] == 1
    assert inst["mean_per_image"]["hausdorff"] == 0.0  # mean over the images with a finite distance (b)
    write_report(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["instances"]["per_image"]["a"]["hausdorff"] is None
    assert "instances" not in evaluate_folders(pred, data)  # semantic only by default
    (data / "labels" / "b.png").unlink()
    with pytest.raises(DataError, match="no instance label image for 'b'"):
        evaluate_folders(pred, data, instances=True, truth_instances=data / "labels")


def test_cli_instances(tmp_path, capsys):
    from unetseg.cli.main import main

    pred, data = instance_data(tmp_path)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(data), "--instances", "--truth-instances",
                 str(data / "labels"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[dataset]" in printed and "ap_50:95" in printed and "hd95" in printed
    report = json.loads(out.read_text())
    assert report["instances"]["per_image"]["a"]["ap"] == pytest.approx(13 / 24)
    # without --instances, uint16 instance labels are not a binary mask: exit 2 naming the file
    assert main(["evaluate", "--pred", str(pred), "--truth", str(data), "--json", str(out)]) == 2
    assert "a.png: mask values [2, 3]" in capsys.readouterr().err


def test_checkpoint_instances(tmp_path, monkeypatch):
    ev = importlib.import_module("unetseg.engine.evaluate")  # the package re-exports a function of the same name

    _, data = instance_data(tmp_path)
    for stem in ("a", "b"):
        save(data / "images" / f"{stem}.png", np.full((4, 6), 100))

    class FakePredictor:  # predicts PRED_A's foreground for "a" and nothing for "b"; its instance method splits
        num_classes, class_names = 2, ["background", "foreground"]  # PRED_A's foreground into PRED_A's 3 objects

        def predict_proba(self, image, path):
            foreground = ((PRED_A > 0) if path.stem == "a" else np.zeros((4, 6))).astype(np.float32)
            return np.stack([1 - foreground, foreground])

        def labels(self, probs):
            return probs.argmax(axis=0).astype(np.uint8)

        def objects(self, probs, labels):
            return np.where(labels > 0, PRED_A, 0).astype(np.int32)

    monkeypatch.setattr(ev.Predictor, "from_checkpoint", classmethod(lambda cls, *a, **k: FakePredictor()))
    report = ev.evaluate_checkpoint("unused.safetensors", data, instances=True, truth_instances=data / "labels")
    a = report["instances"]["per_image"]["a"]
    # the objects of the run's instance method (PRED_A), not the 2 connected components of its foreground (which
    # merge objects 1 and 2: n_pred 2, tp 1, fp 1, fn 1); the same AP as PRED_A's instance file scores
    assert (a["n_pred"], a["tp_50"], a["fp_50"], a["fn_50"]) == (3, 2, 1, 0)
    assert a["ap"] == pytest.approx(13 / 24)
    assert report["instances"]["per_image"]["b"]["ap"] == 1.0
    assert "instances" not in ev.evaluate_checkpoint("unused.safetensors", data)
