"""Training straight from the layouts datasets come in: the Kaggle DSB2018 layout (instances built from one mask
file per nucleus, so the weight map works) and Pascal VOC (palette masks, 255 = not annotated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unetseg import train
from unetseg.config import Config

from conftest import shared_data

KAGGLE_SAMPLE = shared_data() / "dsb2018" / "kaggle_layout_sample"


def small_config(data: Path, out: Path, layout: str) -> Config:
    config = Config()
    config.model.name, config.model.base_channels, config.model.depth = "unet_bn", 4, 2
    config.data.train, config.data.layout, config.data.val_fraction = str(data), layout, 0.2
    tc = config.train
    tc.epochs, tc.batch_size, tc.patch_size, tc.samples_per_epoch = 1, 2, 32, 4
    tc.output_dir, tc.name, tc.device = str(out), layout, "cpu"
    return config


@pytest.mark.skipif(not KAGGLE_SAMPLE.is_dir(), reason="the shared DSB2018 Kaggle sample is not present")
def test_kaggle_layout_with_weight_map(tmp_path):
    config = small_config(KAGGLE_SAMPLE, tmp_path, "dsb2018")
    config.train.weight_map = True
    result = train(config, progress=False)
    assert np.isfinite(result.history[0]["train_loss"])


def test_voc_layout_trains_with_its_ignore_value(tmp_path):
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    palette = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]
    ids = [f"2007_{i:06d}" for i in range(5)]
    for stem in ids:
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        labels = np.zeros((40, 48), np.uint8)
        labels[10:30, 12:36] = 15  # "person"
        labels[9, 12:36] = 255  # object boundary: not annotated
        mask = Image.fromarray(labels, mode="P")
        mask.putpalette(palette)
        mask.save(root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")
    result = train(small_config(root, tmp_path / "runs", "voc"), progress=False)
    assert np.isfinite(result.history[0]["train_loss"]) and np.isfinite(result.history[0]["val_loss"])
    assert "val_dice_class15" in result.history[0]
    from unetseg.config import load_config

    assert load_config(result.run_dir / "config.yaml").data.ignore_index == 255  # recorded for the record


def test_colour_coded_masks_with_a_colour_map(tiny_data, tmp_path):
    from unetseg.cli.main import main
    from unetseg.data.io import read_image, write_png

    colours = {0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 255, 0)}
    root = tmp_path / "data"
    for path in sorted((tiny_data / "images").iterdir()):
        classes = (read_image(tiny_data / "masks" / path.name) > 0).astype(np.uint8)
        classes[:, :8] = 2
        rgb = np.zeros(classes.shape + (3,), np.uint8)
        for index, colour in colours.items():
            rgb[classes == index] = colour
        write_png(root / "images" / path.name, read_image(path))
        write_png(root / "masks" / path.name, rgb)
    (tmp_path / "colours.yaml").write_text("0: [0, 0, 0]\n1: [255, 0, 0]\n2: [0, 255, 0]\n")
    args = ["train", "--data", str(root), "--colormap", str(tmp_path / "colours.yaml"), "--base-channels", "4",
            "--depth", "2", "--epochs", "1", "--patch-size", "24", "--samples-per-epoch", "2", "--output",
            str(tmp_path / "runs"), "--name", "c", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    from unetseg.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "runs" / "c" / "best.safetensors").num_classes == 3
    (tmp_path / "colours.yaml").write_text("0: [0, 0, 0]\n1: [255, 0, 0]\n")  # green is now unknown
    assert main(args[:-7] + ["--output", str(tmp_path / "runs2"), "--no-progress"]) == 2
