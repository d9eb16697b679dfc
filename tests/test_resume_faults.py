"""Resuming a run: options given again, the time budget that is left, changed training data, a run stopped before
its first checkpoint, a run directory that is not one; each refusal is one message (exit 2 on the command line)
and writes nothing."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from unetseg import Callback, train
from unetseg.checkpoint import load_checkpoint, save_checkpoint
from unetseg.config import ConfigError, save_config
from unetseg.engine.run import starting_point

from conftest import tiny_config




class StopAfter(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the end of epoch ``epoch``, after its checkpoints."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, run, state, row):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def stopped_run(tiny_data, tmp_path_factory):
    """A 3-epoch run (own copy of the data) stopped after epoch 1; returns (run directory, data folder)."""
    root = tmp_path_factory.mktemp("stopped")
    data = shutil.copytree(tiny_data, root / "data")
    config = tiny_config(data, root / "runs", epochs=3)
    config.train.tune_prediction = False
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, callbacks=[StopAfter(1)])
    return root / "runs" / "run", data


def snapshot(folder) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path -> (size, modification time)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def test_safe_overrides_are_applied_with_a_note(stopped_run, caplog):
    run_dir, data = stopped_run
    with caplog.at_level(logging.INFO, logger="unetseg"):
        config, previous, _ = starting_point(None, run_dir, None, {"train.num_workers": 1, "train.epochs": 5})
    assert config.train.num_workers == 1 and config.train.epochs == 5 and previous.epoch == 1
    assert "resume: train.epochs = 5 (was 3)" in caplog.text and "resume: train.num_workers = 1 (was 0)" in caplog.text
    config, _, _ = starting_point(None, run_dir, None, {"train.time_budget": 2.5})
    assert config.train.time_budget == 2.5 and config.train.epochs is None  # a budget replaces the epochs
    # the values the run already has are no change: the original command line may be given again
    config, _, _ = starting_point(None, run_dir, None, {"train.lr": 1e-2, "data.train": str(data) + "/",
                                                        "train.name": "run", "train.device": "cpu"})
    assert config.train.lr == 1e-2


def test_other_overrides_are_refused_naming_the_keys(stopped_run):
    run_dir, data = stopped_run
    before = snapshot(run_dir)
    with pytest.raises(ConfigError) as caught:
        train(resume=run_dir, progress=False, overrides={"train.lr": 0.1, "data.train": "other", "train.epochs": 4})
    message = str(caught.value)
    assert message.startswith(f"--resume continues {run_dir} exactly as it was configured; train.lr, data.train "
                              "cannot change (start a new run, or fine-tune from its checkpoint)")
    assert "train.lr=0.1 (the run has 0.01)" in message
    with pytest.raises(ConfigError, match="train.device cannot change .*the device it started on"):
        train(resume=run_dir, progress=False, overrides={"train.device": "cuda"})
    with pytest.raises(ConfigError, match="train.output_dir, train.name cannot change .*the one given to --resume"):
        train(resume=run_dir, progress=False, overrides={"train.output_dir": "elsewhere", "train.name": "x"})
    with pytest.raises(ConfigError, match="'train.bogus' is not a run option"):
        train(resume=run_dir, progress=False, overrides={"train.bogus": 1})
    with pytest.raises(ConfigError, match="not both"):
        train(resume=run_dir, progress=False, overrides={"train.epochs": 4, "train.time_budget": 1.0})
    assert snapshot(run_dir) == before  # nothing written


def test_cli_refuses_a_changed_option_with_exit_2(stopped_run, capsys, cli):
    run_dir, _ = stopped_run
    before = snapshot(run_dir)
    assert cli(["train", "--resume", str(run_dir), "--lr", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"unetseg train: error: --resume continues {run_dir} exactly as it was configured; "
                          "train.lr cannot change")
    assert snapshot(run_dir) == before


def test_changed_training_data_is_refused(stopped_run, tmp_path, capsys, cli):
    run_dir, data = stopped_run
    work = tmp_path / "copy"  # a copy of the stopped run and of its data (mtimes kept), changed here
    shutil.copytree(data, work / "data")
    shutil.copytree(run_dir, work / "run")
    config, previous, _ = starting_point(None, work / "run")
    recorded = previous.run_state["data_files"]
    assert len(recorded) == 16 and recorded["masks/img_003.png"][0] > 0  # 8 images and 8 masks
    # point the copied run at the copied data: rewrite its checkpoint's configuration
    previous.run_config["data"]["train"] = str(work / "data")
    save_checkpoint(work / "run" / "last.safetensors", previous)
    stamp = time.time() + 100
    os.utime(work / "data" / "masks" / "img_003.png", (stamp, stamp))
    shutil.copy(work / "data" / "images" / "img_000.png", work / "data" / "images" / "img_100.png")
    shutil.copy(work / "data" / "masks" / "img_000.png", work / "data" / "masks" / "img_100.png")
    shutil.copy(work / "data" / "labels" / "img_000.png", work / "data" / "labels" / "img_100.png")  # its instances
    before = snapshot(work / "run")
    assert cli(["train", "--resume", str(work / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"unetseg train: error: the training data changed since {work / 'run'} was started: 2 added: "
                   "images/img_100.png, masks/img_100.png; 1 changed (size or modification time): masks/img_003.png; "
                   "resume needs the same data. Start a new run.")
    assert snapshot(work / "run") == before


def test_a_run_killed_before_its_first_checkpoint(tiny_data, tmp_path, capsys, cli):
    config = tiny_config(tiny_data, tmp_path, epochs=2)
    config.train.tune_prediction = False
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(config, run_dir / "config.yaml")  # what a run writes before its first epoch
    (run_dir / ".last.safetensors.a1b2c3d4.tmp").write_bytes(b"half a checkpoint")  # a write that was killed
    assert cli(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"unetseg train: error: {run_dir} has no last.safetensors: the run stopped before its first epoch ended; "
        "start it again (same command without --resume, the folder is reused)")
    result = train(config, progress=False)  # the same command again: the folder is reused
    assert result.run_dir == run_dir and load_checkpoint(result.last_checkpoint).epoch == 2
    assert not list(run_dir.glob(".*.tmp"))  # the orphan of the killed write is gone


def test_resume_from_another_folder_with_a_relative_data_path(tiny_data, tmp_path, monkeypatch):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    shutil.copytree(tiny_data, start / "data")
    elsewhere.mkdir()
    monkeypatch.chdir(start)
    config = tiny_config("data", "runs", epochs=2)  # paths relative to the folder the run starts in
    config.train.tune_prediction = False
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, callbacks=[StopAfter(1)])
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError) as caught:
        train(resume=start / "runs" / "run", progress=False)
    assert str(caught.value) == (f"data.train='data' of {start / 'runs' / 'run'} is relative to the folder the run "
                                 f"was started in, {start}, and is not found from here ({elsewhere}): resume from "
                                 f"that folder (cd {start})")
    monkeypatch.chdir(start)
    assert len(train(resume=Path("runs/run"), progress=False).history) == 2


def test_overrides_belong_to_a_resumed_run(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"overrides \(train.lr\) go with resume=RUN_DIR"):
        train(tiny_config(tiny_data, tmp_path), overrides={"train.lr": 0.1})
    assert not (tmp_path / "run").exists()


def test_resume_of_what_is_not_a_run_directory(tmp_path, capsys, cli):
    missing = tmp_path / "no-such-run"
    assert cli(["train", "--resume", str(missing), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"unetseg train: error: {missing} does not exist: --resume takes the directory of an earlier run "
        "(train.output_dir/train.name, e.g. runs/NAME), which holds last.safetensors; check the path")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty is not a run directory: it holds no last.safetensors"):
        train(resume=tmp_path / "empty")
    (tmp_path / "file.safetensors").write_bytes(b"x")
    with pytest.raises(ConfigError, match=f"file.safetensors is a file: --resume takes the run directory .*"
                                          f"\\(here perhaps {tmp_path}\\)"):
        train(resume=tmp_path / "file.safetensors")
    assert not missing.exists()


def test_stale_temporaries_are_removed_and_logged_on_resume(stopped_run, tmp_path, caplog):
    run_dir, _ = stopped_run
    work = shutil.copytree(run_dir, tmp_path / "run")
    orphan = work / ".best.safetensors.zz99yy88.tmp"
    orphan.write_bytes(b"half")
    with caplog.at_level(logging.INFO, logger="unetseg"):
        result = train(resume=work, progress=False)
    assert not orphan.exists()
    assert f"{work}: removed .best.safetensors.zz99yy88.tmp, left by a write that was interrupted" in caplog.text
    assert len(result.history) == 3


class Watch(Callback):
    """Notes the run's elapsed time when the trainer starts (after the data was read and the network built), then
    the wall clock."""

    def on_start(self, run, state):
        self.elapsed_at_start, self.started = state.elapsed(), time.perf_counter()


def test_a_time_budget_run_resumes_with_the_budget_that_is_left(tiny_data, tmp_path):
    budget = 0.12  # minutes
    config = tiny_config(tiny_data, tmp_path, epochs=None)
    config.train.time_budget, config.train.tune_prediction = budget, False
    first, second = Watch(), Watch()
    called = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, callbacks=[first, StopAfter(2)])
    first_used = time.perf_counter() - called  # the budget's clock starts when train() is called
    run_dir = tmp_path / "run"
    stopped = load_checkpoint(run_dir / "last.safetensors")
    counted = stopped.run_state["elapsed"]
    assert sum(row["seconds"] for row in stopped.history) <= counted <= first_used  # epochs and what came between
    called = time.perf_counter()
    resumed = train(resume=run_dir, progress=False, callbacks=[second])
    second_used = time.perf_counter() - called
    # the time used before is counted, once, with this process's own start (reading the data again) after it
    assert counted <= second.elapsed_at_start <= counted + (second.started - called)
    # tolerances from measured times: 5% of the budget, one validation pass and one epoch's training (an epoch of
    # this run is a few short steps; one of them may be in flight when the time runs out), and what the stopped
    # process did after its last checkpoint, which no checkpoint recorded
    rows = stopped.history + resumed.history[len(stopped.history):]
    validation = max(row.get("val_seconds", 0.0) for row in rows)
    training = max(row["seconds"] - row.get("val_seconds", 0.0) for row in rows)
    assert first_used + second_used <= budget * 60 * 1.05 + validation + training + (first_used - counted)
    assert len(resumed.history) >= 2


def test_a_resumed_run_whose_budget_is_spent_trains_no_more(stopped_run, tmp_path, caplog):
    run_dir, _ = stopped_run
    work = shutil.copytree(run_dir, tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="unetseg"):
        result = train(resume=work, progress=False, overrides={"train.time_budget": 0.0001})  # 6 ms, already used
    assert len(result.history) == 1  # the minutes used depend on the machine's load: any number
    assert re.search(r"time budget: \d+\.\d of 0\.0001 minutes used after epoch 1; 1 epoch\(s\) in all fit",
                     caplog.text)
    assert load_checkpoint(work / "last.safetensors").epoch == 1
