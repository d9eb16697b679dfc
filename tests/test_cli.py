"""The command line end to end on tiny synthetic data, and its error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from unetseg.cli.main import main
from unetseg.data.io import read_image


def test_train_predict_evaluate(tiny_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(tiny_data), "--model", "unet_bn", "--base-channels", "4", "--depth", "2",
                 "--epochs", "2", "--batch-size", "2", "--patch-size", "24", "--samples-per-epoch", "4",
                 "--output", str(runs), "--name", "cli", "--device", "cpu", "--no-progress"])
    assert code == 0
    ckpt = runs / "cli" / "best.safetensors"
    assert ckpt.is_file()
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(tiny_data / "images"), "--output", str(out),
                 "--overlay", "--device", "cpu"]) == 0
    images = sorted((tiny_data / "images").iterdir())
    for image in images:
        pred = read_image(out / image.name)
        assert pred.shape == read_image(image).shape and set(np.unique(pred)) <= {0, 255}
        overlay = read_image(out / f"{image.stem}_overlay.png")
        assert overlay.shape == pred.shape + (3,)
    assert main(["evaluate", "--pred", str(out), "--truth", str(tiny_data)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["per_image"]) == {p.stem for p in images}
    assert 0 <= report["dataset"]["pixel_accuracy"] <= 1
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(tiny_data), "--json",
                 str(tmp_path / "m.json"), "--device", "cpu"]) == 0
    direct = json.loads((tmp_path / "m.json").read_text())
    assert direct["dataset"] == report["dataset"]  # predicting in memory or via files gives the same numbers
    printed = capsys.readouterr().out
    assert "[dataset]" in printed and "dice_foreground" in printed


def test_bad_data_exits_2_naming_the_file(tiny_data, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad / "images" / "x.png")
    assert main(["train", "--data", str(bad), "--epochs", "1", "--no-progress"]) == 2
    assert "x.png has no mask" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(tmp_path / "none.safetensors"), "--input", str(tiny_data / "images"),
                 "--output", str(tmp_path / "o")]) == 2
    assert "none.safetensors" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path)]) == 2


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "unetseg", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "predict", "evaluate", "demo"):
        assert command in result.stdout
