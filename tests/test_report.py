"""The HTML report: reading a run directory, merged and split objects, the error map's colours, the SVG curves,
the page's data (one row per image, worst first, nothing fetched) and the ``report`` / ``evaluate --report``
command lines."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from unetseg.data.io import DataError, write_png
from unetseg.engine.evaluate import evaluate_folders
from unetseg.engine.report import ReportImage, build_html_report, merged_and_split, read_run
from unetseg.engine.report.curves import line_chart, nice_ticks
from unetseg.engine.report.pictures import ERROR_COLOURS, error_map, picture_set
from unetseg.engine.report.run_info import read_log

LOG = ("epoch,lr,train_loss,val_loss,val_foreground_dice,val_mean_iou,seconds\n"
       "1,0.001,1.5,1.4,0.5,0.4,2.0\n"
       "2,0.0005,1.0,1.1,0.8,,2.1\n"
       "3,0.0001,0.8,1.2,0.7,0.6,2.2\n")


def write_run(folder: Path) -> Path:
    """A run directory as unetseg train leaves it (without checkpoints)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {name: unet_bn, depth: 3, base_channels: 16}\n"
                                        "train: {monitor: foreground_dice, epochs: 3}\n")
    (folder / "recipe.yaml").write_text("train.loss:\n  value: bce_dice\n  reason: 'binary masks: one channel'\n")
    (folder / "prediction.yaml").write_text("tta: none\nmin_size: 0\n")
    (folder / "log.csv").write_text(LOG)
    return folder


def test_read_run_and_best_epoch(tmp_path):
    run = read_run(write_run(tmp_path / "r"))
    assert run.name == "r" and run.monitor == "foreground_dice"
    assert [row["epoch"] for row in run.history] == [1, 2, 3]
    assert run.history[1]["train_loss"] == 1.0 and math.isnan(run.history[1]["val_mean_iou"])
    assert run.best_row()["epoch"] == 2  # val_foreground_dice 0.8
    assert run.recipe["train.loss"] == {"value": "bce_dice", "reason": "binary masks: one channel"}
    assert run.prediction == {"tta": "none", "min_size": 0}


def test_read_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        read_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither config.yaml nor log.csv"):
        read_run(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("epoch,lr\nx,1\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 2: expected an integer epoch, got 'x'"):
        read_log(tmp_path / "bad.csv")


def test_merged_and_split_objects():
    true = np.array([[1, 1, 0, 2, 2, 0, 3, 3, 3, 3],
                     [1, 1, 0, 2, 2, 0, 3, 3, 3, 3]])
    pred = np.array([[5, 5, 5, 5, 5, 0, 7, 7, 8, 8],
                     [5, 5, 5, 5, 5, 0, 7, 7, 8, 8]])
    merged, split = merged_and_split(pred, true)
    assert merged.tolist() == [5]  # covers all of true objects 1 and 2
    assert split.tolist() == [3]  # predicted objects 7 and 8 lie inside true object 3
    # a prediction that covers one object and only a corner of the other merges nothing
    pred = np.array([[5, 5, 5, 5, 0, 0, 7, 7, 7, 7],
                     [5, 5, 0, 0, 0, 0, 7, 7, 7, 7]])
    merged, split = merged_and_split(pred, true)
    assert merged.size == 0 and split.size == 0
    assert all(a.size == 0 for a in merged_and_split(np.zeros((3, 3), int), np.zeros((3, 3), int)))


def test_error_map_colours():
    image = np.array([[0, 200, 200], [200, 200, 0]], np.uint8)
    truth = np.array([[0, 1, 1], [2, 255, 0]], np.uint8)
    pred = np.array([[1, 1, 0], [1, 1, 0]], np.uint8)
    rgb = error_map(image, truth, pred, unannotated=truth == 255)
    assert rgb[0, 0].tolist() == list(ERROR_COLOURS["false positive"])
    assert rgb[0, 1].tolist() == list(ERROR_COLOURS["correct foreground"])
    assert rgb[0, 2].tolist() == list(ERROR_COLOURS["false negative"])
    assert rgb[1, 0].tolist() == list(ERROR_COLOURS["wrong class"])
    for y, x in ((1, 1), (1, 2)):  # not annotated, and true background: the image, grey and dimmed
        r, g, b = rgb[y, x].tolist()
        assert r == g == b <= 0.45 * 255


def test_picture_set_counts_merged_and_split_and_fits_the_size():
    true = np.zeros((40, 60), np.int32)
    true[5:15, 5:15], true[5:15, 15:25] = 1, 2
    pred = np.where(true > 0, 9, 0)  # one object over both
    item = ReportImage("a", np.zeros((40, 60), np.uint8), (true > 0).astype(np.uint8), (pred > 0).astype(np.uint8),
                       true, pred)
    pictures = picture_set(item, 2, size=30)
    assert pictures.counts == {"merged": 1, "split": 0}
    assert (pictures.width, pictures.height) == (30, 20)
    assert len(pictures.uris) == 4 and all(u.startswith("data:image/webp;base64,") for u in pictures.uris)


def test_nice_ticks_and_chart():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.13, 0.91) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 47) == [0, 10, 20, 30, 40, 50]
    svg = line_chart("loss", [1, 2, 3], [("train", [1.0, math.nan, 0.5]), ("empty", [math.nan] * 3)], "loss", 3)
    assert svg.count("<polyline") == 2  # the gap at epoch 2 splits the line; the empty series is left out
    assert "train, epoch 3: 0.5" in svg and "empty" not in svg and "best epoch 3" in svg


def synthetic_evaluation(root: Path, count: int = 4) -> tuple[Path, Path]:
    """Images, masks, instance labels and predictions (the truth with every other image's first object moved)."""
    from unetseg.data.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(root / "data", count, 48, 48, seed=3)
    pred = root / "pred"
    pred.mkdir()
    for i, mask in enumerate(sorted((data / "masks").iterdir())):
        from unetseg.data.io import read_image

        labels = read_image(data / "labels" / mask.name)
        moved = np.where(labels == 1, 0, np.roll(labels, 3 * i, axis=1))
        write_png(pred / mask.name, np.where(moved > 0, 255, 0).astype(np.uint8))
    return data, pred


def page_data(html: str, element: str) -> object:
    block = re.search(f'<script type="application/json" id="{element}">(.*?)</script>', html, re.S).group(1)
    return json.loads(block.replace("<\\/", "</"))


def test_page_has_a_row_per_image_worst_first_and_fetches_nothing(tmp_path):
    from unetseg.engine.report import folder_images

    data, pred = synthetic_evaluation(tmp_path)
    metrics = evaluate_folders(pred, data, truth_instances=data / "labels")
    images = folder_images(pred, data, 2, truth_instances=data / "labels")
    html = build_html_report(read_run(write_run(tmp_path / "run")), metrics, images)
    table = page_data(html, "report-data")
    names = [row[0] for row in table["rows"]]
    assert sorted(names) == sorted(metrics["per_image"])
    keys = [c["key"] for c in table["columns"]]
    assert keys[table["sort"]] == "ap"  # objects were scored: worst first by AP 0.5:0.95
    ap = {name: metrics["instances"]["per_image"][name]["ap"] for name in names}
    assert [names[i] for i in table["gallery"]] == sorted(names, key=lambda n: (ap[n], names.index(n)))
    assert len(page_data(html, "report-pictures-0")) == len(names)  # fewer than a block's 25 rows
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)  # no remote resource anywhere
    assert "binary masks: one channel" in html and "<svg" in html  # the recipe's reason, the curves


def test_report_and_evaluate_command_lines(tmp_path, cli, capsys):
    data, pred = synthetic_evaluation(tmp_path, 2)
    run = write_run(tmp_path / "run")
    metrics_json = tmp_path / "m.json"
    assert cli(["evaluate", "--pred", str(pred), "--truth", str(data), "--json", str(metrics_json),
                "--report", str(tmp_path / "e.html")]) == 0
    assert (tmp_path / "e.html").is_file() and "report written to file://" in capsys.readouterr().out
    out = tmp_path / "r.html"
    assert cli(["report", str(run), "--eval", str(metrics_json), "--pred", str(pred), "--truth", str(data),
                "--truth-instances", str(data / "labels"), "-o", str(out)]) == 0
    table = page_data(out.read_text(), "report-data")
    assert len(table["rows"]) == 2 and "merged" in [c["key"] for c in table["columns"]]
    assert cli(["report", str(run), "--pred", str(pred), "-o", str(out)]) == 2
    assert "give --pred DIR and --truth DIR together" in capsys.readouterr().err
    assert cli(["report", str(run), "--pred", str(pred), "--truth", str(data / "masks"), "-o", str(out)]) == 2
    assert "give --images DIR" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert cli(["report", str(run), "--eval", str(tmp_path / "bad.json"), "-o", str(out)]) == 2
    assert "not a report of unetseg evaluate" in capsys.readouterr().err
