"""Folder prediction split across torchrun processes (unetseg.inference.files.predict): every image is predicted by
exactly one process, and the files written are those of one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unetseg.checkpoint import Checkpoint, save_checkpoint
from unetseg.inference.files import files_for_rank, predict
from unetseg.models import create_model


@pytest.mark.parametrize("count, world", [(5, 2), (2, 3), (7, 3), (4, 1)])
def test_each_file_goes_to_exactly_one_rank(count, world):
    files = [Path(f"f{i}.png") for i in range(count)]
    shares = [files_for_rank(files, rank, world) for rank in range(world)]
    assert sorted(f for share in shares for f in share) == sorted(files)  # all, none twice
    assert shares[0] == files[0::world] and all(len(share) in (count // world, -(-count // world)) for share in shares)


def test_two_ranks_write_the_files_of_one_process(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=2)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "cell"],
                                           normalization={"mode": "percentile", "low": 1.0, "high": 99.8},
                                           model_state=model.state_dict()))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 48), dtype=np.uint8)).save(images / f"img{i}.png")
    (one := tmp_path / "one").mkdir()
    predict(checkpoint, [images], one, device="cpu", probabilities=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "unetseg", "predict", "--checkpoint", str(checkpoint), "--input", str(images),
                          "--output", str(tmp_path / "two"), "--device", "cpu", "--probabilities"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    # each process predicted its share (three images and two), not every image
    assert "(process 0 of 2: 3 of the 5 images)" in run.stderr and "(process 1 of 2: 2 of the 5 images)" in run.stderr
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == sorted(p.name for p in one.iterdir()) and len(written) == 10  # labels and probabilities
    for name in written:
        assert (tmp_path / "two" / name).read_bytes() == (one / name).read_bytes(), name
