"""bfloat16 training converges like float32 (same validation Dice within 0.01 on synthetic nuclei)."""

from __future__ import annotations

import pytest
import torch

from unetseg import train
from unetseg.data.synthetic import write_synthetic_dataset
from unetseg.engine.demo import demo_config
from unetseg.precision import cpu_has_native_bf16, resolve_precision


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 arithmetic")
def test_bf16_training_reaches_the_float32_dice(tmp_path):
    write_synthetic_dataset(tmp_path / "data" / "train", 24, seed=0, prefix="train")
    dice = {}
    for precision in ("fp32", "bf16"):
        config = demo_config(tmp_path, epochs=6)
        config.train.precision, config.train.name, config.train.samples_per_epoch = precision, precision, 96
        result = train(config, progress=False)
        dice[precision] = max(row["val_foreground_dice"] for row in result.history)
    assert dice["fp32"] > 0.85
    assert abs(dice["bf16"] - dice["fp32"]) <= 0.01, dice


def test_precision_names():
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half", torch.device("cpu"))
