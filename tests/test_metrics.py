"""Tests for unetseg.metrics (confusion-matrix metrics and ISBI 2012 region metrics)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from unetseg.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    format_metrics_table,
    label_regions,
    rand_error,
    segmentation_metrics,
    variation_of_information,
)

nan = math.nan

# 3-class 2x4 example. Pixel pairs (true, pred), row-major:
# (0,0) (0,1) (1,1) (1,1) / (2,2) (2,0) (2,0) (1,2)
TARGET = np.array([[0, 0, 1, 1],
                   [2, 2, 2, 1]])
PRED = np.array([[0, 1, 1, 1],
                 [2, 0, 0, 2]])
# rows = true class, columns = predicted class
EXPECTED_CM = np.array([[1, 1, 0],
                        [0, 2, 1],
                        [2, 0, 1]])


def assert_list_close(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        if math.isnan(e):
            assert math.isnan(a), (actual, expected)
        else:
            assert a == pytest.approx(e), (actual, expected)


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, EXPECTED_CM)


def test_metrics_by_hand():
    # TP = [1, 2, 1]; true counts T = [2, 3, 3]; predicted counts P = [3, 3, 2]; 8 pixels, 4 correct.
    m = segmentation_metrics(EXPECTED_CM, class_names=["bg", "a", "b"])
    assert m["pixel_accuracy"] == pytest.approx(4 / 8)
    # recall = TP / T
    assert_list_close(m["class_accuracy"], [1 / 2, 2 / 3, 1 / 3])
    assert_list_close(m["recall"], [1 / 2, 2 / 3, 1 / 3])
    assert m["mean_class_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 3) / 3)  # = 1/2
    # precision = TP / P
    assert_list_close(m["precision"], [1 / 3, 2 / 3, 1 / 2])
    # union = T + P - TP = [4, 4, 4]
    assert_list_close(m["iou"], [1 / 4, 1 / 2, 1 / 4])
    assert m["mean_iou"] == pytest.approx(1 / 3)
    # fw_iou = 2/8 * 1/4 + 3/8 * 1/2 + 3/8 * 1/4 = 2/32 + 6/32 + 3/32 = 11/32
    assert m["fw_iou"] == pytest.approx(11 / 32)
    # dice = 2 TP / (T + P) = [2/5, 4/6, 2/5]
    assert_list_close(m["dice"], [2 / 5, 2 / 3, 2 / 5])
    assert m["mean_dice"] == pytest.approx(22 / 45)
    assert m["foreground_dice"] == pytest.approx((2 / 3 + 2 / 5) / 2)  # 8/15
    assert m["foreground_iou"] == pytest.approx((1 / 2 + 1 / 4) / 2)  # 3/8
    assert m["class_names"] == ["bg", "a", "b"]


def test_binary_foreground_is_class_one():
    cm = np.array([[5, 1], [2, 3]])
    m = segmentation_metrics(cm)
    # class 1: TP 3, T 5, P 4 -> IoU 3/6, Dice 6/9
    assert m["foreground_iou"] == pytest.approx(1 / 2) == m["iou"][1]
    assert m["foreground_dice"] == pytest.approx(2 / 3) == m["dice"][1]
    assert m["class_names"] == ["0", "1"]


def test_ignore_index():
    target = np.array([[0, 255, 1], [255, 2, 2]], dtype=np.uint8)
    pred = np.array([[0, 2, 1], [1, 2, 0]])
    # counted pairs: (0,0) (1,1) (2,2) (2,0); the two 255 pixels are skipped
    expected = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3, ignore_index=255), expected)
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 3, ignore_index=255), expected)
    # a negative ignore index (torch's CrossEntropyLoss default) also works
    t2 = np.where(target == 255, -100, target.astype(np.int64))
    np.testing.assert_array_equal(confusion_matrix(pred, t2, 3, ignore_index=-100), expected)
    # without ignore_index the 255 values are out of range
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(pred, target, 3)


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, size=(2, 17, 13))
    pred = rng.integers(0, 4, size=(2, 17, 13))
    expected = confusion_matrix(pred, target, 4)
    assert expected.sum() == target.size
    got_torch = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 4)
    got_mixed = confusion_matrix(torch.from_numpy(pred).to(torch.int32), target.astype(np.uint8), 4)
    np.testing.assert_array_equal(got_torch, expected)
    np.testing.assert_array_equal(got_mixed, expected)
    assert got_torch.dtype == np.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_tensors():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 3, size=(4, 32, 32))
    pred = rng.integers(0, 3, size=(4, 32, 32))
    expected = confusion_matrix(pred, target, 3)
    cm = ConfusionMatrix(3)
    cm.update(torch.from_numpy(pred).cuda(), torch.from_numpy(target).cuda())
    np.testing.assert_array_equal(cm.matrix, expected)


def test_accumulation_equals_concatenation():
    rng = np.random.default_rng(2)
    batches = [(rng.integers(0, 5, size=(n, 8, 8)), rng.integers(0, 6, size=(n, 8, 8))) for n in (1, 3, 2)]
    batches = [(p, np.where(t == 5, 255, t)) for p, t in batches]  # class 5 -> ignored
    acc = ConfusionMatrix(5, ignore_index=255)
    per_batch = []
    for i, (p, t) in enumerate(batches):
        if i % 2:
            per_batch.append(acc.update(torch.from_numpy(p), torch.from_numpy(t)))
        else:
            per_batch.append(acc.update(p, t))
    all_p = np.concatenate([p for p, _ in batches])
    all_t = np.concatenate([t for _, t in batches])
    whole = confusion_matrix(all_p, all_t, 5, ignore_index=255)
    np.testing.assert_array_equal(acc.matrix, whole)
    np.testing.assert_array_equal(sum(per_batch), whole)
    assert acc.compute() == segmentation_metrics(whole)
    m = acc.matrix
    m += 1  # .matrix is a copy
    np.testing.assert_array_equal(acc.matrix, whole)
    acc.reset()
    assert acc.matrix.sum() == 0 and acc.matrix.dtype == np.int64


def test_nan_conventions():
    # class 2 absent from both target and prediction
    m = segmentation_metrics(confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 3))
    assert_list_close(m["iou"], [1 / 2, 1 / 2, nan])
    assert_list_close(m["dice"], [2 / 3, 2 / 3, nan])
    assert_list_close(m["class_accuracy"], [1 / 2, 1, nan])
    assert_list_close(m["precision"], [1, 1 / 2, nan])
    assert m["mean_iou"] == pytest.approx(1 / 2)  # NaN excluded
    assert m["mean_dice"] == pytest.approx(2 / 3)
    assert m["mean_class_accuracy"] == pytest.approx(3 / 4)
    assert m["foreground_iou"] == pytest.approx(1 / 2)

    # class 1 predicted but absent from the target: IoU/Dice 0, recall NaN, precision 0
    m = segmentation_metrics(confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2))
    assert_list_close(m["iou"], [1 / 2, 0.0])
    assert_list_close(m["class_accuracy"], [1 / 2, nan])
    assert_list_close(m["precision"], [1.0, 0.0])
    assert m["mean_iou"] == pytest.approx(1 / 4)
    assert m["mean_class_accuracy"] == pytest.approx(1 / 2)
    assert m["fw_iou"] == pytest.approx(1 / 2)  # freq = [1, 0]

    # a single class: no foreground
    m = segmentation_metrics(np.array([[4]]))
    assert m["mean_iou"] == 1.0 and math.isnan(m["foreground_iou"]) and math.isnan(m["foreground_dice"])

    # empty matrix: NaN everywhere
    m = segmentation_metrics(np.zeros((3, 3), dtype=np.int64))
    for key, value in m.items():
        if key == "class_names":
            continue
        values = value if isinstance(value, list) else [value]
        assert all(math.isnan(v) for v in values), key
    assert confusion_matrix(np.zeros((0,), int), np.zeros((0,), int), 3).sum() == 0


def test_metrics_are_json_serialisable():
    m = segmentation_metrics(confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 3))
    for value in m.values():
        assert type(value) in (float, list)
        if isinstance(value, list):
            assert all(type(v) in (float, str) for v in value)
    back = json.loads(json.dumps(m, allow_nan=True))
    assert back["mean_iou"] == m["mean_iou"] and math.isnan(back["iou"][2])


def test_fw_iou_by_hand():
    cm = np.array([[5, 1, 0, 0],
                   [0, 1, 0, 1],
                   [0, 0, 0, 0],
                   [1, 0, 0, 1]])
    # T = [6, 2, 0, 2] (10 pixels), P = [6, 2, 0, 2], TP = [5, 1, 0, 1]
    # IoU = [5/7, 1/3, NaN, 1/3]; freq = [0.6, 0.2, 0, 0.2]
    # fw_iou = 0.6 * 5/7 + 0.2 * 1/3 + 0.2 * 1/3 = 3/7 + 2/15 = 45/105 + 14/105 = 59/105
    m = segmentation_metrics(cm)
    assert_list_close(m["iou"], [5 / 7, 1 / 3, nan, 1 / 3])
    assert m["fw_iou"] == pytest.approx(59 / 105)
    assert m["mean_iou"] == pytest.approx((5 / 7 + 2 / 3) / 3)


def test_out_of_range_values_raise():
    t = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"pred contains value 3\b"):
        confusion_matrix(np.array([0, 3, 1]), t, 3)
    with pytest.raises(ValueError, match=r"target contains value -1\b"):
        confusion_matrix(t, np.array([0, -1, 1]), 3)
    with pytest.raises(ValueError, match=r"target contains value 7\b"):
        confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 7, 1]), 3, ignore_index=255)
    with pytest.raises(ValueError, match=r"pred contains value 255\b"):
        # ignore_index only applies to the target
        confusion_matrix(torch.tensor([0, 255, 1]), torch.tensor([0, 255, 1]), 3, ignore_index=255)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((4,), int), 3)
    with pytest.raises(TypeError, match="argmax"):
        confusion_matrix(torch.rand(2, 3), torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="square"):
        segmentation_metrics(np.zeros((2, 3)))


def test_agrees_with_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    k = 5
    labels = list(range(k))
    for trial in range(5):
        target = rng.integers(0, k, size=2000)
        # a correlated prediction, so that the scores are not all near chance
        pred = np.where(rng.random(2000) < 0.6, target, rng.integers(0, k, size=2000))
        cm = confusion_matrix(pred, target, k)
        np.testing.assert_array_equal(cm, sk.confusion_matrix(target, pred, labels=labels))
        m = segmentation_metrics(cm)
        np.testing.assert_allclose(m["iou"], sk.jaccard_score(target, pred, average=None, labels=labels))
        np.testing.assert_allclose(m["dice"], sk.f1_score(target, pred, average=None, labels=labels))
        np.testing.assert_allclose(m["precision"], sk.precision_score(target, pred, average=None, labels=labels))
        np.testing.assert_allclose(m["recall"], sk.recall_score(target, pred, average=None, labels=labels))
        assert m["pixel_accuracy"] == pytest.approx(sk.accuracy_score(target, pred))
        assert m["mean_class_accuracy"] == pytest.approx(sk.balanced_accuracy_score(target, pred))
        assert m["mean_iou"] == pytest.approx(sk.jaccard_score(target, pred, average="macro"))
        assert m["fw_iou"] == pytest.approx(sk.jaccard_score(target, pred, average="weighted"))


def test_format_metrics_table():
    names = ["bg", "cell", "other"]
    rows = {
        "img_001.png": segmentation_metrics(EXPECTED_CM, names),
        "img_002.png": segmentation_metrics(confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 3), names),
    }
    rows["total"] = segmentation_metrics(EXPECTED_CM + confusion_matrix(np.array([0, 1, 1]),
                                                                        np.array([0, 0, 1]), 3), names)
    text = format_metrics_table(rows, names)
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    header = lines[0].split()
    assert header == ["name", "pixel_acc", "mean_acc", "mean_iou", "fw_iou", "dice_bg", "dice_cell", "dice_other"]
    assert len({len(line) for line in lines}) == 1  # aligned
    row1, row2, total = (line.split() for line in lines[2:])
    assert row1[0] == "img_001.png" and row2[0] == "img_002.png" and total[0] == "total"
    assert row1[1] == "0.5000" and row1[3] == "0.3333"
    assert row2[-1] == "-" and "-" not in row1[1:]  # class 'other' absent from image 2 -> NaN dice
    assert len(row2) == len(header)
    # class names default to those stored in the rows
    assert format_metrics_table(rows) == text


def test_label_regions_by_hand():
    mask = np.array([[1, 1, 0, 2],
                     [0, 0, 0, 2],
                     [1, 0, 1, 1]])
    lab = label_regions(mask)
    assert lab.dtype == np.int32
    np.testing.assert_array_equal(lab, [[1, 1, 0, 0],
                                        [0, 0, 0, 0],
                                        [2, 0, 3, 3]])
    # with values 1 and 2 as foreground, the right-hand column joins the bottom-right pair
    np.testing.assert_array_equal(label_regions(mask, foreground=(1, 2)), [[1, 1, 0, 2],
                                                                           [0, 0, 0, 2],
                                                                           [3, 0, 2, 2]])
    diag = np.array([[1, 0], [0, 1]])
    assert label_regions(diag, connectivity=1).max() == 2
    assert label_regions(diag, connectivity=2).max() == 1
    with pytest.raises(ValueError):
        label_regions(diag, connectivity=3)


def test_rand_error_perfect_prediction():
    true = label_regions(np.array([[1, 1, 0, 1], [1, 0, 0, 1], [0, 0, 1, 1]]))
    r = rand_error(true, true)
    assert r["rand_error"] == 0.0 and r["rand_precision"] == 1.0 and r["rand_recall"] == 1.0
    # relabelling the regions (and labelling the ignored true-0 pixels anything) changes nothing
    relabelled = np.where(true > 0, 10 - true, 7)
    assert rand_error(relabelled, true)["rand_error"] == pytest.approx(0.0)
    json.dumps(r)


def test_rand_error_by_hand():
    true = np.array([[1, 1, 0],
                     [1, 0, 2],
                     [0, 2, 2]])
    pred = np.array([[1, 1, 1],
                     [2, 1, 2],
                     [3, 2, 2]])
    # True-0 pixels (0,2), (1,1), (2,0) are ignored (their predicted labels 1, 1, 3 do not matter).
    # Remaining pixels (true, pred): (1,1) (1,1) (1,2) | (2,2) (2,2) (2,2)
    # contingency n_ij: n(1,1) = 2, n(1,2) = 1, n(2,2) = 3
    # ordered pairs joined in both:  S = sum n(n-1) = 2*1 + 1*0 + 3*2 = 8
    # true region sizes a = [3, 3]:  A = 3*2 + 3*2 = 12
    # pred region sizes b = [2, 4] (pred 1: 2 pixels, pred 2: 4 pixels): B = 2*1 + 4*3 = 14
    # scikit-image: precision = S / A = 8/12 = 2/3, recall = S / B = 8/14 = 4/7,
    #               F = S / (0.5 A + 0.5 B) = 8/13, error = 1 - 8/13 = 5/13
    r = rand_error(pred, true)
    assert r["rand_error"] == pytest.approx(5 / 13)
    assert r["rand_precision"] == pytest.approx(2 / 3)
    assert r["rand_recall"] == pytest.approx(4 / 7)
    assert r["rand_split_score"] == pytest.approx(2 / 3)  # pred splits true region 1
    assert r["rand_merge_score"] == pytest.approx(4 / 7)


def test_rand_error_merge_vs_split():
    true = np.array([[1, 1, 2, 2]])
    merged = np.array([[1, 1, 1, 1]])
    # S = 2*1 + 2*1 = 4; A = 2*1 + 2*1 = 4; B = 4*3 = 12 -> split score 1, merge score 1/3, error 1 - 8/16
    r = rand_error(merged, true)
    assert r["rand_split_score"] == pytest.approx(1.0)
    assert r["rand_merge_score"] == pytest.approx(1 / 3)
    assert r["rand_error"] == pytest.approx(1 / 2)
    # swapping the roles: the prediction splits -> split score drops instead
    r = rand_error(np.array([[1, 1, 2, 2]]), np.array([[1, 1, 1, 1]]))
    assert r["rand_split_score"] == pytest.approx(1 / 3) and r["rand_merge_score"] == pytest.approx(1.0)
    # no non-zero true pixels -> undefined, NaN without warnings
    r = rand_error(np.array([[1, 2]]), np.array([[0, 0]]))
    assert math.isnan(r["rand_error"])
    with pytest.raises(ValueError, match="shape"):
        rand_error(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_rand_error_with_background():
    true = np.array([[0, 0, 1, 1]])
    pred = np.array([[1, 1, 1, 1]])
    # default: true-0 pixels ignored -> one true region, one predicted region -> perfect
    assert rand_error(pred, true)["rand_error"] == pytest.approx(0.0)
    # background as a region: S = 2*1 + 2*1 = 4, A = 2*1 + 2*1 = 4, B = 4*3 = 12 -> error 1 - 8/16
    assert rand_error(pred, true, ignore_background=False)["rand_error"] == pytest.approx(0.5)


def test_variation_of_information_by_hand():
    log2 = math.log2
    # merge: true {1,1,2,2}, pred {1,1,1,1}: H(true | pred) = H(true) = 1 bit, H(pred | true) = 0
    vi = variation_of_information(np.array([1, 1, 1, 1]), np.array([1, 1, 2, 2]))
    assert vi == pytest.approx({"vi": 1.0, "vi_split": 0.0, "vi_merge": 1.0})
    # split: true one region, pred {1,1,2,3}: H(pred | true) = H(1/2, 1/4, 1/4) = 1.5 bits
    vi = variation_of_information(np.array([1, 1, 2, 3]), np.array([5, 5, 5, 5]))
    assert vi == pytest.approx({"vi": 1.5, "vi_split": 1.5, "vi_merge": 0.0})
    # mixed: true {1,1,2,2}, pred {1,2,2,2}; joint p = 1/4 (1,1), 1/4 (1,2), 1/2 (2,2): H(joint) = 1.5,
    # H(true) = 1, H(pred) = H(1/4, 3/4) -> split = 1.5 - 1 = 0.5, merge = 1.5 - H(pred)
    h_pred = -(0.25 * log2(0.25) + 0.75 * log2(0.75))
    vi = variation_of_information(np.array([1, 2, 2, 2]), np.array([1, 1, 2, 2]))
    assert vi["vi_split"] == pytest.approx(0.5) and vi["vi_merge"] == pytest.approx(1.5 - h_pred)
    assert vi["vi"] == pytest.approx(2.0 - h_pred)  # 1.1887...
    # relabelling changes nothing
    assert variation_of_information(np.array([9, 4, 4, 4]), np.array([3, 3, 7, 7])) == pytest.approx(vi)


def test_variation_of_information_background():
    true = np.array([[0, 0, 1, 1]])
    pred = np.array([[1, 2, 3, 3]])
    # true-0 pixels ignored: the rest is one region in both -> 0
    assert variation_of_information(pred, true) == pytest.approx({"vi": 0.0, "vi_split": 0.0, "vi_merge": 0.0})
    # background as a region: true {0,0,1,1} vs pred {1,2,3,3}: H(pred | true) = 1/2 * 1 bit
    vi = variation_of_information(pred, true, ignore_background=False)
    assert vi == pytest.approx({"vi": 0.5, "vi_split": 0.5, "vi_merge": 0.0})
    assert all(math.isnan(v) for v in variation_of_information(pred, np.zeros_like(true)).values())
    json.dumps(vi)


def test_rand_index_error_by_hand_and_against_sklearn():
    from unetseg.metrics import rand_index_error

    # 4 pixels, truth (1, 1, 2, 2), prediction (1, 1, 1, 2): 6 pairs; they disagree on pairs (0,2), (1,2), (2,3)
    # -> Rand index 3/6, Rand error 0.5
    true = np.array([[1, 1, 2, 2]])
    pred = np.array([[1, 1, 1, 2]])
    assert rand_index_error(pred, true) == pytest.approx(0.5)
    assert rand_index_error(true, true) == 0.0
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(1, 5, (12, 9)), rng.integers(0, 4, (12, 9))
        expected = 1 - sklearn_metrics.rand_score(a.ravel(), b.ravel())
        assert rand_index_error(b, a) == pytest.approx(expected)
    with_background = rng.integers(0, 3, (6, 6))
    keep = with_background != 0
    other = rng.integers(0, 3, (6, 6))
    assert rand_index_error(other, with_background) == pytest.approx(
        1 - sklearn_metrics.rand_score(with_background[keep], other[keep]))
