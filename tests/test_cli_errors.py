"""How the command line fails: one line on stderr, exit 2 for what the user can fix, 1 and a log for a bug, 130
when interrupted; never a traceback without --debug, never a half-written file."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import unetseg.cli.main as cli_main
from unetseg.checkpoint import Checkpoint, save_checkpoint
from unetseg.cli.main import describe_os_error, main
from unetseg.fileio import atomic_write_text
from unetseg.models import create_model

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained but complete binary checkpoint (prediction needs nothing else)."""
    torch.manual_seed(0)
    model = create_model("unet_bn", base_channels=4, depth=2, num_classes=1)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_checkpoint(path, Checkpoint(model_config=model.config, num_classes=2, class_names=["bg", "fg"],
                                     normalization={"mode": "percentile", "low": 1.0, "high": 99.8},
                                     model_state=model.state_dict()))
    return path


def predict_args(checkpoint, images, out, *more):
    return ["predict", "--checkpoint", str(checkpoint), "--input", str(images), "--output", str(out),
            "--device", "cpu", *more]


def failed(capsys, code, expected_code=2):
    """The one stderr line of a failure with exit status ``expected_code``."""
    err = capsys.readouterr().err
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- files and folders that cannot be written: the fault raised where a command writes ---------------------------

def writes_into(output: str) -> None:
    """What a command does with its output folder: create it, then write a file in it atomically."""
    Path(output).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(output) / "labels.txt", "x")


def _a_file(tmp_path):
    (tmp_path / "taken").write_text("keep me")
    return tmp_path / "taken", tmp_path / "taken"


def _below_a_file(tmp_path):
    (tmp_path / "taken").write_text("keep me")
    return tmp_path / "taken" / "sub", tmp_path / "taken"


def _unwritable(tmp_path):
    if os.geteuid() == 0:  # root ignores permissions; the kernel's /proc refuses new files to everyone
        return Path("/proc/unetseg-test/out"), None
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    return folder / "out", None


OUTPUT_FAULTS = [
    ("output-is-a-file", _a_file, r"^unetseg predict: error: --output {out}: it is an existing file, but a folder "
                                  r"is needed there: give a folder path, or move the file away$"),
    ("output-below-a-file", _below_a_file, r"^unetseg predict: error: --output {out}: {blocker} is an existing file, "
                                           r"but a folder is needed there"),
    ("output-unwritable", _unwritable, r"^unetseg predict: error: --output {out}( \(.*\))?: cannot write there \(.+\): "
                                       r"choose a folder you can write to$"),
]


@pytest.mark.parametrize("name, make, message", OUTPUT_FAULTS, ids=[f[0] for f in OUTPUT_FAULTS])
def test_an_output_that_cannot_be_written_exits_2_naming_it(tiny_data, tmp_path, monkeypatch, capsys, checkpoint,
                                                            name, make, message):
    out, blocker = make(tmp_path)
    monkeypatch.setattr("unetseg.cli.predict.validate_predict", lambda options: None)
    monkeypatch.setattr("unetseg.cli.predict.predict", lambda checkpoint, inputs, output, **kw: writes_into(output))
    line = failed(capsys, main(predict_args(checkpoint, tiny_data / "images", out)))
    import re

    assert re.match(message.format(out=re.escape(str(out)), blocker=re.escape(str(blocker))), line), line
    if blocker is not None:
        assert blocker.read_text() == "keep me"


def test_a_real_prediction_into_a_file_exits_2(tiny_data, tmp_path, capsys, checkpoint):
    (tmp_path / "taken").write_text("keep me")
    line = failed(capsys, main(predict_args(checkpoint, tiny_data / "images", tmp_path / "taken")))
    assert line.startswith("unetseg predict: error: ") and str(tmp_path / "taken") in line and "file" in line
    assert (tmp_path / "taken").read_text() == "keep me"


@pytest.mark.parametrize("code, words", [
    (errno.EROFS, "--output {out} ({out}{sep}labels.txt): cannot write there (Read-only file system): choose a "
                  "folder on a writable disk"),
    (errno.ENOSPC, "disk full while writing {out}{sep}labels.txt (No space left on device): free space and run again"),
    (errno.EACCES, "--output {out} ({out}{sep}labels.txt): cannot write there (Permission denied): choose a folder "
                   "you can write to"),
])
def test_oserrors_while_writing_name_the_file_and_what_to_do(tiny_data, tmp_path, monkeypatch, capsys, checkpoint,
                                                             code, words):
    out = tmp_path / "out"

    def refused(path):
        raise OSError(code, os.strerror(code))

    def command(checkpoint, inputs, output, **kw):
        Path(output).mkdir()
        from unetseg.fileio import atomic_write_with

        atomic_write_with(Path(output) / "labels.txt", refused)

    monkeypatch.setattr("unetseg.cli.predict.validate_predict", lambda options: None)
    monkeypatch.setattr("unetseg.cli.predict.predict", command)
    line = failed(capsys, main(predict_args(checkpoint, tiny_data / "images", out)))
    assert line == "unetseg predict: error: " + words.format(out=out, sep=os.sep)
    assert list(out.iterdir()) == []  # the temporary file is gone


def test_reading_faults_say_what_to_check(tmp_path):
    missing = OSError(errno.ENOENT, "No such file or directory", str(tmp_path / "in" / "a.png"))
    assert describe_os_error(missing, [("--input", str(tmp_path / "in"))]) == (
        f"--input {tmp_path / 'in'} ({tmp_path / 'in' / 'a.png'}): not found (No such file or directory): check the path")
    denied = OSError(errno.EACCES, "Permission denied", str(tmp_path / "a.png"))
    assert describe_os_error(denied) == f"{tmp_path / 'a.png'}: cannot read {tmp_path / 'a.png'} (Permission denied): " \
                                        "check its permissions"
    assert describe_os_error(OSError(errno.EIO, "Input/output error")).startswith("Input/output error: check")


def test_disk_full_during_predict_leaves_no_partial_file(tiny_data, tmp_path, monkeypatch, capsys, checkpoint):
    out = tmp_path / "pred"
    saved = Image.Image.save
    calls = []

    def fills_the_disk(self, fp, *args, **kwargs):
        calls.append(Path(fp))
        if len(calls) < 3:
            return saved(self, fp, *args, **kwargs)
        Path(fp).write_bytes(b"\x89PNG half")  # part of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fills_the_disk)
    line = failed(capsys, main(predict_args(checkpoint, tiny_data / "images", out)))
    assert line.startswith("unetseg predict: error: ") and "No space left on device" in line
    assert len(calls) >= 3 and calls[2].name.endswith(".tmp")
    target = calls[2].name[1:].rsplit(".", 2)[0]  # .NAME.XXXXXXXX.tmp -> NAME
    assert target in line and "free space" in line
    assert not (out / target).exists()
    left = sorted(p.name for p in out.iterdir())
    assert not [name for name in left if name.endswith(".tmp")], left
    for name in left:  # what was written before the disk filled up is complete
        assert Image.open(out / name).size == (48, 48)


# --- internal errors, --debug and interruptions -------------------------------------------------------------------

def test_an_internal_error_exits_1_with_the_log_of_its_traceback(tiny_data, tmp_path, monkeypatch, capsys,
                                                                 checkpoint):
    def broken(*args, **kwargs):
        raise RuntimeError("tensor sizes\ndo not match")

    monkeypatch.setattr("unetseg.cli.predict.predict", broken)
    line = failed(capsys, main(predict_args(checkpoint, tiny_data / "images", tmp_path / "o")), expected_code=1)
    prefix = ("unetseg predict: internal error (RuntimeError: tensor sizes do not match); this is a bug: the full "
              "traceback is in ")
    assert line.startswith(prefix), line
    log = Path(line[len(prefix):])
    try:
        assert log.parent == Path(tempfile.gettempdir()) / "unetseg" and log.name.startswith("error-")
        text = log.read_text()
        assert "Traceback (most recent call last)" in text and "in broken" in text and "do not match" in text
        assert f"command line: unetseg predict --checkpoint {checkpoint}" in text
    finally:
        log.unlink()


def test_an_unwritable_log_still_gives_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(cli_main, "LOG_DIR", tmp_path / "file" / "logs")
    monkeypatch.setattr("unetseg.cli.models.run", lambda args: 1 / 0)
    line = failed(capsys, main(["models"]), expected_code=1)
    assert line.startswith("unetseg models: internal error (ZeroDivisionError: division by zero); this is a bug: "
                           "the traceback could not be written to") and line.endswith("run again with --debug to see it")


def test_debug_lets_the_traceback_through(tiny_data, tmp_path, monkeypatch, checkpoint):
    from unetseg.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        main(["--debug", *predict_args(tmp_path / "none.safetensors", tiny_data / "images", tmp_path / "o")])
    monkeypatch.setattr("unetseg.cli.predict.predict", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", *predict_args(checkpoint, tiny_data / "images", tmp_path / "o")])


def test_ctrl_c_during_a_command_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("unetseg.cli.models.run", interrupted)
    assert failed(capsys, main(["models"]), expected_code=130) == "unetseg models: interrupted"


def test_ctrl_c_while_the_command_line_loads_exits_130(monkeypatch, capsys):
    """The entry point catches an interruption raised while it imports the command line."""
    import importlib.abc

    import unetseg.cli.entry as entry

    class Interrupt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "unetseg.cli.main":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "unetseg.cli.main")
    monkeypatch.setattr(sys, "meta_path", [Interrupt(), *sys.meta_path])
    assert failed(capsys, entry.main(["models"]), expected_code=130) == "unetseg: interrupted"


def test_the_entry_point_and_package_import_no_torch():
    code = ("import sys, unetseg.cli.entry, unetseg; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert {'train', 'Predictor', 'Config', 'evaluate'} <= set(dir(unetseg)); "
            "from unetseg import train, evaluate; assert evaluate.__name__ == 'evaluate_folders'; "
            "assert 'torch' in sys.modules; print(unetseg.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert result.returncode == 0 and result.stdout.strip() == "0.1.0", result.stderr
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        import unetseg

        unetseg.nothing  # noqa: B018


def test_sigint_while_python_dash_m_starts_exits_130_without_traceback():
    process = subprocess.Popen([sys.executable, "-m", "unetseg", "models"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})
    time.sleep(0.3)  # the interpreter is up and importing torch and the package (which takes seconds)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip() in ("unetseg: interrupted", "unetseg models: interrupted"), err


# --- checkpoints -------------------------------------------------------------------------------------------------

def _rewritten(source, target, edit=None, tensor=None):
    with safe_open(str(source), framework="pt") as f:
        metadata, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    if edit is not None:
        payload = json.loads(metadata["payload"]) if not isinstance(edit, str) else None
        metadata["payload"] = edit if isinstance(edit, str) else json.dumps(edit(payload) or payload)
    if tensor is not None:
        tensors[tensor[0]] = tensor[1]
    save_file(tensors, str(target), metadata=metadata)
    return target


CHECKPOINT_FAULTS = [
    ("bad-json", {"edit": "{oops"}, "metadata 'payload' is not valid JSON"),
    ("missing-key", {"edit": lambda p: p.pop("normalization") and None}, "metadata key 'normalization' is missing"),
    ("unknown-model", {"edit": lambda p: p["model_config"].update(name="unet9")}, "unknown model 'unet9'"),
    ("unknown-option", {"edit": lambda p: p["model_config"].update(wings=2)}, "has no option 'wings'"),
    ("shape", {"tensor": ("model/head.weight", torch.zeros(1, 4, 3, 3))},
     "weight model/head.weight has shape (1, 4, 3, 3) but the network 'unet_bn' of model_config needs (1, 4, 1, 1)"),
    ("classes-vs-head", {"edit": lambda p: p.update(num_classes=3, class_names=["a", "b", "c"])},
     "num_classes is 3 but the network's head has 1 output channel(s), so num_classes must be 2"),
]


@pytest.mark.parametrize("name, change, words", CHECKPOINT_FAULTS, ids=[f[0] for f in CHECKPOINT_FAULTS])
def test_a_damaged_checkpoint_exits_2_naming_the_file(tiny_data, tmp_path, capsys, checkpoint, name, change, words):
    bad = _rewritten(checkpoint, tmp_path / f"{name}.safetensors", **change)
    out = tmp_path / "pred"
    line = failed(capsys, main(predict_args(bad, tiny_data / "images", out)))
    assert line.startswith(f"unetseg predict: error: {bad}: ") and words in line, line
    assert "another checkpoint" in line
    assert not out.exists() or not any(out.iterdir())
    line = failed(capsys, main(["evaluate", "--checkpoint", str(bad), "--data", str(tiny_data), "--device", "cpu"]))
    assert line.startswith(f"unetseg evaluate: error: {bad}: ") and words in line, line


def test_checkpoint_run_dir_predicts_with_its_best_checkpoint(tiny_data, tmp_path, capsys, checkpoint):
    run = tmp_path / "run"
    run.mkdir()
    line = failed(capsys, main(predict_args(run, tiny_data / "images", tmp_path / "none")))
    assert line == (f"unetseg predict: error: {run}: a folder without a checkpoint (looked for best.safetensors and "
                    "last.safetensors); give a .safetensors file or the directory of a training run")
    (run / "best.safetensors").write_bytes(checkpoint.read_bytes())
    assert main(predict_args(run, tiny_data / "images", tmp_path / "pred")) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == len(list((tiny_data / "images").iterdir()))


# --- train --resume hands the options given over to the engine ---------------------------------------------------

def test_resume_passes_the_given_run_options_as_overrides(monkeypatch, tmp_path):
    calls = []

    class Result:
        run_dir = best_checkpoint = tmp_path

    monkeypatch.setattr("unetseg.cli.train.train", lambda *args, **kwargs: calls.append((args, kwargs)) or Result())
    assert main(["train", "--resume", "RUN", "--lr", "1e-4", "--data", "X", "--epochs", "7", "--no-progress",
                 "--model-opt", "dropout=0.1"]) == 0
    assert calls == [((), {"resume": "RUN", "epochs": 7, "progress": False,
                           "overrides": {"train.lr": 1e-4, "data.train": "X", "model.options": {"dropout": 0.1}}})]
    calls.clear()
    assert main(["train", "--resume", "RUN"]) == 0
    assert calls == [((), {"resume": "RUN", "epochs": None, "progress": True, "overrides": {}})]


def test_resume_with_a_config_file_exits_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("unetseg.cli.train.train", lambda *a, **k: pytest.fail("train must not run"))
    line = failed(capsys, main(["train", "--resume", "RUN", "--config", "c.yaml"]))
    assert line == ("unetseg train: error: --config c.yaml cannot be used with --resume RUN: a resumed run keeps the "
                    "configuration stored in its last.safetensors; give only the options to change as flags "
                    "(e.g. --lr 1e-4)")


def test_a_training_output_that_is_a_file_exits_2_naming_the_flag_used(tiny_data, tmp_path, capsys):
    (tmp_path / "taken").write_text("keep me")
    code = main(["-q", "train", "--data", str(tiny_data), "--output", str(tmp_path / "taken"), "--epochs", "1",
                 "--base-channels", "4", "--depth", "2", "--patch-size", "24", "--batch-size", "2",
                 "--samples-per-epoch", "2", "--device", "cpu", "--no-progress"])
    line = failed(capsys, code)
    assert line.startswith(f"unetseg train: error: --output {tmp_path / 'taken'}") and "is an existing file" in line
    assert (tmp_path / "taken").read_text() == "keep me"


@pytest.mark.parametrize("error, words", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     "out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB): use a smaller --batch-size"),
    (MemoryError(), "out of memory (MemoryError): use a smaller --batch-size, --patch-size or --tile"),
])
def test_running_out_of_memory_is_the_users_to_fix(monkeypatch, capsys, error, words):
    def exhausted(args):
        raise error

    monkeypatch.setattr("unetseg.cli.models.run", exhausted)
    line = failed(capsys, main(["models"]))
    assert line.startswith(f"unetseg models: error: {words}"), line
