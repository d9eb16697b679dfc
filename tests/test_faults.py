"""The fault table: every bad input and fault a user met, through the command line as a user runs it.

Each row builds its input in a fresh folder, runs ``unetseg ...`` in-process, and checks the exit code, the words of
the message, that no traceback reached the user, and that no file outside the command's output changed.
docs/reliability.md lists the same rows with what the tool does.
"""

from __future__ import annotations

import errno
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from safetensors import safe_open
from safetensors.torch import save_file

from unetseg import train
from unetseg.cli.main import main
from unetseg.data.io import write_png

from conftest import tiny_config


@dataclass
class Case:
    """One row: ``build(tmp, run)`` makes the input and returns (argv, output folder or None)."""

    name: str
    build: Callable[[Path, Path], tuple[list[str], Path | None]]
    exit_code: int
    words: tuple[str, ...]
    stream: str = "err"  # where the words appear: err or out


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    """A finished two-epoch run directory (kept outside every row's folder; rows copy it)."""
    return train(tiny_config(tiny_data, tmp_path_factory.mktemp("runs"), epochs=2), progress=False).run_dir


def dataset(tmp: Path, n: int = 4, size: int = 32) -> Path:
    """A small folder dataset: n grey images with one bright square each, and {0, 255} masks."""
    root = tmp / "data"
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(0, 60, (size, size), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[4 + i: 14 + i, 6:18] = 255
        image[mask > 0] += 150
        write_png(root / "images" / f"img{i}.png", image)
        write_png(root / "masks" / f"img{i}.png", mask)
    return root


def train_args(data: Path, tmp: Path, *more: str) -> list[str]:
    return ["train", "--data", str(data), "--output", str(tmp / "runs"), "--name", "r", "--epochs", "1",
            "--device", "cpu", "--no-progress", "--base-channels", "4", "--depth", "2", "--batch-size", "2",
            "--patch-size", "16", *more]


def predict_args(ckpt: Path, inputs: Path, out: Path, *more: str) -> list[str]:
    return ["predict", "--checkpoint", str(ckpt), "--input", str(inputs), "--output", str(out), "--device", "cpu",
            *more]


def copy_run(run: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(run, tmp / "run"))


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` 8-bit grey pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def edited_checkpoint(run: Path, tmp: Path, edit: Callable[[dict, dict], None]) -> Path:
    """A copy of ``run``'s best checkpoint whose payload (and tensors) ``edit(payload, tensors)`` changed."""
    with safe_open(str(run / "best.safetensors"), "pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    payload = json.loads(meta["payload"])
    edit(payload, tensors)
    meta["payload"] = payload.pop("__raw__", None) or json.dumps(payload)  # __raw__: a payload that is not JSON
    path = tmp / "edited.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


# ------------------------------------------------------------------------------------------------- the rows

def _predict_into_inputs(tmp, run):
    data = dataset(tmp)
    return predict_args(run / "best.safetensors", data / "images", data / "images"), None


def _existing_output(tmp, run):
    data, out = dataset(tmp), tmp / "out"
    write_png(out / "img0.png", np.zeros((4, 4), np.uint8))
    return predict_args(run / "best.safetensors", data / "images", out), None


def _nan_image(value: float) -> Callable:
    def build(tmp, run):
        image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
        image[3, 4] = value
        (tmp / "imgs").mkdir()
        tifffile.imwrite(tmp / "imgs" / "bad.tif", image)
        return predict_args(run / "best.safetensors", tmp / "imgs", tmp / "out"), tmp / "out"
    return build


def _train_nan(tmp, run):
    data = dataset(tmp)
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    image[0, 0] = np.nan
    (data / "images" / "img0.png").unlink()
    tifffile.imwrite(data / "images" / "img0.tif", image)
    return train_args(data, tmp), tmp / "runs"


def _inspect_nan(tmp, run):
    args, _ = _train_nan(tmp, run)
    return ["inspect", args[2]], None


def _pages_as_channels(tmp, run):
    data = dataset(tmp)
    (data / "images" / "img0.png").unlink()
    tifffile.imwrite(data / "images" / "img0.tif", np.zeros((3, 32, 32), np.uint8), photometric="minisblack")
    return train_args(data, tmp), tmp / "runs"


def _eight_pages(tmp, run):
    data = dataset(tmp)
    (data / "images" / "img1.png").unlink()
    tifffile.imwrite(data / "images" / "img1.tif", np.zeros((8, 64, 64), np.uint8), photometric="minisblack")
    return ["inspect", str(data)], None


def _stray_value(tmp, run):
    data = dataset(tmp)
    mask = np.zeros((32, 32), np.uint8)
    mask[5:12, 5:12], mask[20, 20] = 1, 5
    write_png(data / "masks" / "img2.png", mask)
    for i in (0, 1, 3):  # the others as {0, 1} too
        m = np.zeros((32, 32), np.uint8)
        m[4:14, 6:18] = 1
        write_png(data / "masks" / f"img{i}.png", m)
    return train_args(data, tmp), tmp / "runs"


def _empty_masks(tmp, run):
    data = dataset(tmp)
    for mask in (data / "masks").iterdir():
        write_png(mask, np.zeros((32, 32), np.uint8))
    return train_args(data, tmp), tmp / "runs"


def _tiny_images(tmp, run):
    data = dataset(tmp)
    write_png(data / "images" / "img3.png", np.zeros((1, 1), np.uint8))
    write_png(data / "masks" / "img3.png", np.zeros((1, 1), np.uint8))
    return train_args(data, tmp), tmp / "runs"


def _missing_masks(tmp, run):
    data = dataset(tmp)
    shutil.rmtree(data / "masks")
    return train_args(data, tmp), tmp / "runs"


def _bomb(command: str) -> Callable:
    def build(tmp, run):
        data = dataset(tmp)
        png_header_only(data / "images" / "img1.png", 100_000, 100_000)
        if command == "train":
            return train_args(data, tmp), tmp / "runs"
        if command == "inspect":
            return ["inspect", str(data)], None
        return predict_args(run / "best.safetensors", data / "images", tmp / "out"), tmp / "out"
    return build


def _diverging(tmp, run):
    return train_args(dataset(tmp), tmp, "--lr", "1e30"), tmp / "runs"


def _output_is_a_file(tmp, run):
    data = dataset(tmp)
    (tmp / "out.txt").write_text("keep me")
    return predict_args(run / "best.safetensors", data / "images", tmp / "out.txt"), None


def _output_under_proc(tmp, run):
    data = dataset(tmp)
    return predict_args(run / "best.safetensors", data / "images", Path("/proc/unetseg-fault-test")), None


def _checkpoint_edit(edit: Callable[[dict, dict], None]) -> Callable:
    def build(tmp, run):
        data = dataset(tmp)
        return predict_args(edited_checkpoint(run, tmp, edit), data / "images", tmp / "out"), tmp / "out"
    return build


def _unknown_model(payload, tensors):
    payload["model_config"]["name"] = "unet9"


def _shape_mismatch(payload, tensors):
    key = next(k for k in tensors if k.endswith("weight") and tensors[k].ndim == 4)
    tensors[key] = tensors[key][:, :1].contiguous()


def _bad_json(payload, tensors):
    payload["__raw__"] = '{"model_config": {"name": "unet_bn"'


def _missing_key(payload, tensors):
    del payload["normalization"]


def _classes_vs_head(payload, tensors):
    payload["num_classes"], payload["class_names"] = 5, [f"c{i}" for i in range(5)]


def _run_dir_as_checkpoint(tmp, run):
    data = dataset(tmp)
    return predict_args(copy_run(run, tmp), data / "images", tmp / "out"), tmp / "out"


def _resume_with_new_lr(tmp, run):
    run = copy_run(run, tmp)
    return ["train", "--resume", str(run), "--lr", "0.5", "--no-progress"], run


def _resume_more_epochs(tmp, run):
    run = copy_run(run, tmp)
    return ["train", "--resume", str(run), "--epochs", "3", "--no-progress"], run


def _resume_before_first_checkpoint(tmp, run):
    (tmp / "runs" / "r").mkdir(parents=True)
    (tmp / "runs" / "r" / "config.yaml").write_text("model: {name: unet_bn}\n")
    return ["train", "--resume", str(tmp / "runs" / "r"), "--no-progress"], None


def _folder_with_a_bad_image(tmp, run):
    data = dataset(tmp)
    (data / "images" / "img2.png").write_bytes(b"not a png at all")
    return predict_args(run / "best.safetensors", data / "images", tmp / "out"), tmp / "out"


def _stale_temporary(tmp, run):
    data, out = dataset(tmp), tmp / "out"
    out.mkdir()
    (out / ".img0.png.k3j2.tmp").write_bytes(b"half")
    return predict_args(run / "best.safetensors", data / "images", out), out


CASES = [
    Case("predict into its own input folder", _predict_into_inputs, 2, ("same folder", "choose another --output")),
    Case("predict over an existing output", _existing_output, 2, ("exist already", "--overwrite")),
    Case("predict a float TIFF with NaN", _nan_image(np.nan), 2, ("1 NaN", "replace them")),
    Case("predict a float TIFF with one +inf pixel", _nan_image(np.inf), 2, ("+inf",)),
    Case("train on an image with NaN", _train_nan, 2, ("NaN", "img0.tif")),
    Case("inspect an image with NaN", _inspect_nan, 0, ("NaN", "img0.tif"), "out"),
    Case("a 3-page TIFF with a 1-page mask", _pages_as_channels, 2, ("stack of 3 pages", "img0.tif")),
    Case("an 8-page TIFF", _eight_pages, 0, ("stack of 8 pages",), "out"),
    Case("one stray mask value", _stray_value, 2, ("mask value 5", "--num-classes 6")),
    Case("every mask empty", _empty_masks, 2, ("foreground pixel", "nothing to learn")),
    Case("a 1x1 image", _tiny_images, 2, ("too small to segment", "img3.png")),
    Case("images/ without masks/", _missing_masks, 2, ("masks: missing", "masks/* (one mask per image")),
    Case("decompression bomb (train)", _bomb("train"), 2, ("100000x100000", "limit")),
    Case("decompression bomb (inspect)", _bomb("inspect"), 0, ("100000x100000",), "out"),
    Case("decompression bomb (predict)", _bomb("predict"), 2, ("100000x100000", "--block")),
    Case("training that diverges (--lr 1e30)", _diverging, 2, ("diverged twice", "lower --lr")),
    Case("--output that is a file", _output_is_a_file, 2, ("out.txt", "folder")),
    Case("--output under /proc", _output_under_proc, 2, ("/proc/unetseg-fault-test", "choose another --output")),
    Case("checkpoint: unknown model", _checkpoint_edit(_unknown_model), 2, ("edited.safetensors", "unet9")),
    Case("checkpoint: weight shape mismatch", _checkpoint_edit(_shape_mismatch), 2, ("edited.safetensors", "shape")),
    Case("checkpoint: bad JSON", _checkpoint_edit(_bad_json), 2, ("edited.safetensors",)),
    Case("checkpoint: missing key", _checkpoint_edit(_missing_key), 2, ("edited.safetensors", "normalization")),
    Case("checkpoint: 5 classes on a 1-channel head", _checkpoint_edit(_classes_vs_head), 2,
         ("edited.safetensors", "num_classes")),
    Case("--checkpoint RUN_DIR", _run_dir_as_checkpoint, 0, ("label image(s)",), "out"),
    Case("--resume with a new --lr", _resume_with_new_lr, 2, ("train.lr cannot change",)),
    Case("--resume with a new --epochs total", _resume_more_epochs, 0, ("run directory",), "out"),
    Case("--resume before the first checkpoint", _resume_before_first_checkpoint, 2, ("start it again",)),
    Case("a folder with one unreadable image", _folder_with_a_bad_image, 2,
         ("1 of 4 image(s) could not be predicted", "img2.png")),
    Case("a stale temporary file of a killed write", _stale_temporary, 0, ("label image(s)",), "out"),
]


def snapshot(root: Path, leave_out: Path | None) -> dict[str, bytes]:
    """Every file under ``root`` but not under ``leave_out``: relative name -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (leave_out is None or leave_out != p and leave_out not in p.parents)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, output = case.build(tmp_path, trained)
    before = snapshot(tmp_path, output)
    code = main(argv)
    out, err = capsys.readouterr()
    shown = err if case.stream == "err" else out + err
    assert code == case.exit_code, f"{case.name}: exit {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    for word in case.words:
        assert word in shown, f"{case.name}: {word!r} not in: {shown[-2000:]}"
    assert "Traceback" not in out + err
    if code == 2:
        assert len([line for line in err.splitlines() if "error:" in line]) == 1  # one message
    assert snapshot(tmp_path, output) == before  # nothing outside the output changed


def test_the_table_covers_each_exit_path():
    codes = {case.exit_code for case in CASES}
    assert codes == {0, 2} and len({case.name for case in CASES}) == len(CASES)


def test_disk_full_while_predicting_leaves_complete_files_only(trained, tmp_path, monkeypatch, capsys):
    """ENOSPC while the second label image is being written (half of it on disk): exit 2 naming the file; the
    first image is whole, no partial or temporary file is left."""
    from PIL import Image

    data, out = dataset(tmp_path), tmp_path / "out"
    real_save, calls = Image.Image.save, []

    def full_disk(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) > 1:
            Path(fp).write_bytes(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    before = snapshot(tmp_path, out)
    assert main(predict_args(trained / "best.safetensors", data / "images", out)) == 2
    err = capsys.readouterr().err
    assert "disk full while writing" in err and "img1.png" in err and "free space" in err
    assert "Traceback" not in err
    assert not list(out.glob(".*")) and snapshot(tmp_path, out) == before
    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["img0.png"] and Image.open(written[0]).size == (32, 32)
