"""kill -9 at any moment: a tiny training is killed (SIGKILL, so nothing of the process runs after it) during an
epoch, right after a checkpoint was written, half-way through writing one, between ``best`` and ``last``, before
its first checkpoint, and from outside at a moment it does not choose; each is then resumed in another process and
must end with the weights of a run that was never stopped, bit for bit, with a readable ``best.safetensors`` from
the best epoch of its history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unetseg.checkpoint import load_checkpoint
from unetseg.config import save_config

from conftest import tiny_config

# The child process. The kill points are set up here only, by wrapping what the trainer calls:
#   step:N          SIGKILL before the N-th optimisation step of the run (3 steps per epoch)
#   after:NAME:N    SIGKILL right after the N-th write of NAME.safetensors (best or last)
#   during:NAME:N   SIGKILL half-way through the N-th write of NAME.safetensors (a half-written temporary file)
#   (no point)      print STEP n before every step, for a kill from outside
CHILD = r"""
import json, os, signal, sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
torch.set_num_threads(1)

import unetseg.checkpoint as checkpoint_module
import unetseg.engine.callbacks.checkpoints as checkpoints_module
from unetseg import train
from unetseg.config import ConfigError, load_config


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def count_steps(kill_at=None):
    steps = iter(range(1, 10**9))

    def hook(optimizer, args, kwargs):
        n = next(steps)
        print(f"STEP {n}", flush=True)
        if n == kill_at:
            die()
    register_optimizer_step_pre_hook(hook)


def kill_at_write(kind, name, nth):
    real_save, real_file, writes = checkpoints_module.save_checkpoint, checkpoint_module.save_file, [0]

    def half_written(tensors, filename, metadata=None):
        real_file(tensors, filename, metadata=metadata)
        os.truncate(filename, os.path.getsize(filename) // 2)
        die()

    def save(path, ckpt):
        writes[0] += Path(path).name == f"{name}.safetensors"
        hit = Path(path).name == f"{name}.safetensors" and writes[0] == nth
        if hit and kind == "during":
            checkpoint_module.save_file = half_written
        real_save(path, ckpt)
        if hit:
            die()
    checkpoints_module.save_checkpoint = save


mode, args = sys.argv[1], sys.argv[2:]
if mode == "run":  # CONFIG [POINT]
    point = args[1] if len(args) > 1 else ""
    kind, _, rest = point.partition(":")
    if kind == "step" or not point:
        count_steps(int(rest) if rest else None)
    else:
        name, nth = rest.split(":")
        kill_at_write(kind, name, int(nth))
    train(load_config(args[0]), progress=False)
else:  # resume REPORT CONFIG RUN_DIR [CONFIG RUN_DIR ...]: the reference run first (no RUN_DIR to resume)
    report = {}
    for config, run_dir in zip(args[1::2], args[2::2]):
        if run_dir == "-":
            train(load_config(config), progress=False)
            continue
        stale = sorted(p.name for p in Path(run_dir).glob(".*.tmp"))
        try:
            train(resume=run_dir, progress=False)
            report[run_dir] = {"stale": stale, "refused": ""}
        except ConfigError as err:  # stopped before its first checkpoint: start it again, in the same folder
            train(load_config(config), progress=False)
            report[run_dir] = {"stale": stale, "refused": str(err)}
    Path(args[0]).write_text(json.dumps(report))
"""

POINTS = {
    "in_epoch_2": "step:5",
    "after_last_of_epoch_2": "after:last:2",
    "while_writing_last_of_epoch_3": "during:last:3",
    "between_best_and_last": "after:best:2",
    "while_writing_best": "during:best:2",
    "before_the_first_checkpoint": "step:2",
}


def child(script: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1] / "src"),
                                                                      os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, **kwargs)


def best_epoch_of(history: list[dict]) -> int:
    """The last epoch whose mean validation Dice over it and the two epochs before it is the highest."""
    scores = [row["val_foreground_dice"] for row in history]
    windows = [scores[max(0, i - 2):i + 1] for i in range(len(scores))]
    means = [sum(w) / len(w) for w in windows]
    return max(i for i, m in enumerate(means) if m == max(means)) + 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_run_killed_at_any_moment_resumes_to_the_same_weights(tiny_data, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    configs = {}
    for name in ["reference", "from_outside", *POINTS]:
        configs[name] = tmp_path / f"{name}.yaml"
        save_config(tiny_config(tiny_data, tmp_path / name, epochs=4), configs[name])
    killed = {name: child(script, "run", str(configs[name]), point, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) for name, point in POINTS.items()}
    outside = child(script, "run", str(configs["from_outside"]), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True)
    killed["from_outside"] = outside
    try:
        for line in outside.stdout:  # a kill from outside, some time into epoch 3 (wherever the process is then)
            if line.strip() == "STEP 7":
                outside.send_signal(signal.SIGKILL)
                break
        for name, process in killed.items():
            assert process.wait(timeout=120) == -signal.SIGKILL, name  # it was killed, it did not finish
    finally:
        for process in killed.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        outside.stdout.close()
    run_dirs = {name: tmp_path / name / "run" for name in killed}
    assert any((run_dirs["while_writing_last_of_epoch_3"]).glob(".last.safetensors.*.tmp"))  # half-written
    assert not (run_dirs["before_the_first_checkpoint"] / "last.safetensors").exists()
    best_ahead = load_checkpoint(run_dirs["between_best_and_last"] / "best.safetensors").epoch
    assert best_ahead == load_checkpoint(run_dirs["between_best_and_last"] / "last.safetensors").epoch + 1

    report_file = tmp_path / "report.json"
    pairs = [str(configs["reference"]), "-"] + [str(x) for name in killed for x in (configs[name], run_dirs[name])]
    resume = child(script, "resume", str(report_file), *pairs, stderr=subprocess.PIPE, text=True)
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err[-3000:]
    report = json.loads(report_file.read_text())

    reference = load_checkpoint(tmp_path / "reference" / "run" / "last.safetensors")
    reference_best = load_checkpoint(tmp_path / "reference" / "run" / "best.safetensors")
    for name, run_dir in run_dirs.items():
        refused = report[str(run_dir)]["refused"]
        assert refused.endswith("has no last.safetensors: the run stopped before its first epoch ended; start it "
                                "again (same command without --resume, the folder is reused)") == (
            name == "before_the_first_checkpoint"), name
        last = load_checkpoint(run_dir / "last.safetensors")
        assert last.epoch == 4 and last.model_state.keys() == reference.model_state.keys(), name
        assert all(torch.equal(last.model_state[k], reference.model_state[k]) for k in last.model_state), name
        assert [row["train_loss"] for row in last.history] == [row["train_loss"] for row in reference.history], name
        best = load_checkpoint(run_dir / "best.safetensors")  # readable, never behind
        assert best.epoch == best_epoch_of(last.history) == last.run_state["best_epoch"], name
        assert all(torch.equal(best.model_state[k], reference_best.model_state[k]) for k in best.model_state), name
        assert best.prediction is not None, name
        assert not list(run_dir.glob(".*.tmp")), name  # the orphans of interrupted writes are gone
        assert len((run_dir / "log.csv").read_text().splitlines()) == 5, name
    assert report[str(run_dirs["while_writing_last_of_epoch_3"])]["stale"]  # it was there before the resume
