"""Training on several processes (torchrun, DistributedDataParallel over gloo): the same weights as one process
with the same global batch, a resume on another number of processes, a process that fails, and the pieces
(the patches each process draws, the split of the batch)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from unetseg.checkpoint import load_checkpoint, save_checkpoint
from unetseg.cli.main import main
from unetseg.config import Config, ConfigError
from unetseg.engine.distributed import RankSampler, check_split, record_processes
from unetseg.engine.plan import batch_size_for
from unetseg.engine.trainer import train

# a run whose only randomness is the patches (no augmentation), with a per-image norm and a per-pixel loss, so that
# two processes of 2 patches compute exactly the gradient of one process of 4 (averaged by DDP), up to rounding
FLAGS = ["--model", "unet_bn", "--base-channels", "4", "--depth", "2", "--norm", "instance", "--loss", "bce",
         "--optimizer", "sgd", "--lr", "0.01", "--batch-size", "4", "--patch-size", "24", "--samples-per-epoch", "8",
         "--no-augment", "--precision", "fp32", "--device", "cpu", "--no-tune-prediction", "--no-progress"]

# what the processes torchrun starts run (one launch: starting processes is the slow part): the exchanges of
# unetseg.distributed in a process group of the script's own, then the command line (``unetseg train``) for one
# epoch, then a run of 3 epochs through the Python API in which rank 1 fails after epoch 2
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch.distributed as dist
    from unetseg import Callback, Config, train
    from unetseg.cli.main import main
    from unetseg.distributed import from_rank_zero, json_from_rank_zero, rank_and_world, sum_over_processes

    data, out, flags = sys.argv[1], sys.argv[2], sys.argv[3:]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    seen = [from_rank_zero(np.float64(0.5 + rank)), from_rank_zero(np.bool_(rank == 0)), from_rank_zero(7 + rank),
            json_from_rank_zero({"rank": rank, "inf": float("inf")}), sum_over_processes(np.array([rank + 1])).tolist()]
    dist.destroy_process_group()
    with open(f"{out}/seen_{rank}.json", "w") as f:
        json.dump([[value, type(value).__name__] for value in seen], f)
    if main(["train", "--data", data, *flags, "--epochs", "1", "--output-dir", out, "--name", "two"]):
        sys.exit("unetseg train failed")

    class FailOnRankOne(Callback):
        def on_epoch_end(self, run, state, row):
            if state.epoch == 2 and rank_and_world()[0] == 1:
                raise ValueError("rank 1 fails on purpose")

    config = Config()
    config.model.name, config.model.base_channels, config.model.depth, config.model.norm = "unet_bn", 4, 2, "instance"
    config.data.train, config.data.val_fraction = data, 0.25
    tc = config.train
    tc.epochs, tc.batch_size, tc.patch_size, tc.samples_per_epoch = 3, 4, 24, 8
    tc.augment, tc.tune_prediction, tc.device, tc.output_dir, tc.name = False, False, "cpu", out, "failing"
    train(config, progress=False, callbacks=[FailOnRankOne()])
""")


@pytest.fixture(scope="module")
def launched(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The folder of the runs of :data:`SCRIPT` on 2 gloo processes (a free port of their own, one thread each),
    and what the launch printed and returned."""
    out = tmp_path_factory.mktemp("ddp")
    (out / "script.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(out / "script.py"), str(tiny_data), str(out), *FLAGS]
    with subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as launch:
        try:
            stdout, stderr = launch.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)  # torchrun and the processes it started
            raise
    done = subprocess.CompletedProcess(command, launch.returncode, stdout, stderr)
    assert (out / "two" / "last.safetensors").is_file(), done.stderr[-3000:]
    return out, done


@pytest.fixture(scope="module")
def one_process(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of the same epoch trained by one process (``unetseg train`` in this process)."""
    out = tmp_path_factory.mktemp("single")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["train", "--data", str(tiny_data), *FLAGS, "--epochs", "1", "--output-dir", str(out),
                     "--name", "one"]) == 0
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return out / "one"


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.safetensors").model_state


def test_two_processes_train_the_weights_of_one(launched: tuple[Path, subprocess.CompletedProcess],
                                                one_process: Path) -> None:
    out, done = launched
    one, two = load_checkpoint(one_process / "last.safetensors"), load_checkpoint(out / "two" / "last.safetensors")
    for key, value in one.model_state.items():
        torch.testing.assert_close(two.model_state[key], value, rtol=1e-4, atol=1e-6, msg=key)
    for key in ("train_loss", "val_loss", "val_foreground_dice", "val_mean_iou"):  # validation split over the two
        assert two.history[0][key] == pytest.approx(one.history[0][key], rel=1e-5), key
    assert torch.equal(two.torch_rng_state, one.torch_rng_state)
    for section in ("model", "data", "train"):  # the checkpoint of 2 processes is one of a single process
        assert {k: v for k, v in two.run_config[section].items() if k not in ("output_dir", "name")} == \
            {k: v for k, v in one.run_config[section].items() if k not in ("output_dir", "name")}
    assert two.recipe["train.processes"]["value"] == 2 and "train.processes" not in one.recipe
    assert sorted(p.name for p in (out / "two").iterdir()) == sorted(p.name for p in one_process.iterdir())
    assert done.stdout.count(f"run directory: {out / 'two'}") == 1  # rank 0 speaks for the run


def test_a_run_of_two_processes_continues_on_one(launched: tuple[Path, subprocess.CompletedProcess],
                                                one_process: Path, tmp_path: Path) -> None:
    out, _ = launched
    continued, single = tmp_path / "continued", tmp_path / "single"
    shutil.copytree(out / "two", continued)
    train(resume=continued, epochs=2, progress=False)
    # the same state written by one process: its checkpoint with the weights and optimizer of the two processes
    shutil.copytree(one_process, single)
    state, two = load_checkpoint(single / "last.safetensors"), load_checkpoint(out / "two" / "last.safetensors")
    state.model_state, state.optimizer_state = two.model_state, two.optimizer_state
    save_checkpoint(single / "last.safetensors", state)
    train(resume=single, epochs=2, progress=False)
    for key, value in weights(single).items():
        assert torch.equal(weights(continued)[key], value), key
    assert not torch.equal(weights(continued)["head.weight"], two.model_state["head.weight"])  # it did train


def test_a_failed_process_ends_the_run_with_its_checkpoint_intact(
        launched: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, done = launched
    run_dir = out / "failing"
    assert done.returncode != 0
    assert "process rank 1 of 2 failed (ValueError: rank 1 fails on purpose)" in done.stderr
    assert f"--resume {run_dir}" in done.stderr
    assert "process rank 0 of 2 stopped because another process of the run ended" in done.stderr
    last = load_checkpoint(run_dir / "last.safetensors")  # whole: written atomically
    assert last.epoch in (1, 2)
    result = train(resume=run_dir, progress=False)  # one process finishes what the two started
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


def test_every_process_gets_rank_zero_s_decisions(launched: tuple[Path, subprocess.CompletedProcess]) -> None:
    out, _ = launched
    expected = [[0.5, "float"], [True, "bool"], [7, "int"], [{"rank": 0, "inf": float("inf")}, "dict"], [[3], "list"]]
    for rank in (0, 1):
        assert json.loads((out / f"seen_{rank}.json").read_text()) == expected


def test_each_process_draws_its_share_of_the_global_batches() -> None:
    patches = list(range(12))
    alone = [b.tolist() for b in DataLoader(patches, batch_size=6)]
    for world in (2, 3):
        shares = [list(DataLoader(patches, batch_size=6 // world, sampler=RankSampler(patches, rank, world)))
                  for rank in range(world)]
        together = [sorted(sum((share[step].tolist() for share in shares), [])) for step in range(2)]
        assert together == alone == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]


def test_the_global_batch_must_split_evenly() -> None:
    config = Config()
    config.train.batch_size, config.train.samples_per_epoch = 6, 12
    check_split(config, 3)
    with pytest.raises(ConfigError, match=r"train.batch_size=6 .* 4 processes.*\(1, 2, 3, 6\)"):
        check_split(config, 4)
    config.train.batch_size, config.train.samples_per_epoch = 4, 10
    with pytest.raises(ConfigError, match="train.samples_per_epoch=10 .* 4 processes"):
        check_split(config, 4)
    assert batch_size_for(96, torch.device("cpu"), processes=4) == 16  # 14 patches rounded up to 4 x 4
    assert batch_size_for(256, torch.device("cpu"), processes=3) == 3  # at least one patch per process
    assert record_processes({"train.processes": {"value": 2}}, 4, 1) == {}
    assert record_processes({}, 6, 3)["train.processes"]["value"] == 3
