"""The built-in demo: a quick smoke run, and the full default run with its promised quality."""

from __future__ import annotations

from unetseg.engine.demo import run_demo


def test_demo_smoke(tmp_path):
    result = run_demo(tmp_path / "w", epochs=1, n_train=6, n_test=2, progress=False)
    assert (result.run_dir / "best.safetensors").is_file()
    assert sorted(p.name for p in result.predictions.glob("test_*.png")) == [
        "test_000.png", "test_000_overlay.png", "test_001.png", "test_001_overlay.png"]
    assert result.metrics_file.is_file()
    again = run_demo(tmp_path / "w", epochs=1, n_train=6, n_test=2, progress=False)  # reruns replace the old run
    assert again.run_dir == result.run_dir


def test_default_demo_reaches_dice_090(tmp_path):
    # The numbers `make demo` promises: held-out foreground Dice >= 0.90 (it takes well under a minute on 2 cores).
    result = run_demo(tmp_path / "demo", progress=False)
    assert result.report["dataset"]["foreground_dice"] >= 0.90
    assert result.report["mean_per_image"]["foreground_dice"] >= 0.90
