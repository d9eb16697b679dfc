"""`unetseg predict` loses nothing and goes on past a bad image: output folders that hold inputs, existing outputs,
unreadable images among good ones, temporary files of an interrupted run, a run folder as checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unetseg import train
from unetseg.cli.main import main
from unetseg.config import ConfigError, PredictConfig, validate_predict
from unetseg.data.io import DataError, read_image
from unetseg.inference import files as files_module
from unetseg.inference.files import OutputConflictError, PredictionFailures, predict

from conftest import tiny_config


@pytest.fixture(scope="module")
def checkpoint(tiny_data, tmp_path_factory) -> Path:
    """A checkpoint trained for one epoch, outside every test's tmp_path."""
    return train(tiny_config(tiny_data, tmp_path_factory.mktemp("runs"), epochs=1), progress=False).best_checkpoint


@pytest.fixture()
def images(tiny_data, tmp_path) -> Path:
    """A folder of three good 48x48 PNG images: a.png, b.png, c.png."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, source in zip("abc", sorted((tiny_data / "images").iterdir())):
        shutil.copy(source, folder / f"{name}.png")
    return folder


def snapshot(root: Path, leave_out: Path | None = None) -> dict[str, bytes]:
    """Every file under ``root`` (but not under ``leave_out``): relative name -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (leave_out is None or leave_out not in p.parents)}


def run_predict(checkpoint: Path, *args: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), "--device", "cpu", *args])


def test_output_folder_equal_to_the_input_folder_is_refused(checkpoint, images, tmp_path, capsys):
    before = snapshot(tmp_path)
    assert run_predict(checkpoint, "--input", str(images), "--output", str(images)) == 2
    err = capsys.readouterr().err
    assert f"--input {images} and --output {images} are the same folder" in err
    assert "choose another --output" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before  # the inputs are byte-identical and nothing was added
    with pytest.raises(ConfigError, match="are the same folder"):
        validate_predict(PredictConfig(str(checkpoint), [str(images)], str(images)))


def test_output_folder_holding_an_input_image_or_being_one_is_refused(checkpoint, images, tmp_path, capsys):
    before = snapshot(tmp_path)
    assert run_predict(checkpoint, "--input", str(images / "b.png"), "--output", str(images)) == 2
    err = capsys.readouterr().err
    assert f"--output {images} holds 1 of the input images (e.g. {images / 'b.png'})" in err
    assert run_predict(checkpoint, "--input", str(images / "a.png"), "--output", str(images / "a.png")) == 2
    err = capsys.readouterr().err
    assert f"--output {images / 'a.png'} is the input image {images / 'a.png'}; expected a folder" in err
    assert snapshot(tmp_path) == before
    link = tmp_path / "elsewhere"
    link.symlink_to(images, target_is_directory=True)  # the same folder under another name
    assert run_predict(checkpoint, "--input", str(images / "c.png"), "--output", str(link)) == 2
    assert f"--output {link} holds 1 of the input images (e.g. {images / 'c.png'})" in capsys.readouterr().err
    assert snapshot(images) == snapshot(images.parent / "imgs") and sorted(snapshot(images)) == [
        "a.png", "b.png", "c.png"]
    assert snapshot(images) == {name[len("imgs/"):]: data for name, data in before.items()}


def test_output_that_is_a_file_or_outputs_that_would_collide_are_refused(checkpoint, images, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert run_predict(checkpoint, "--input", str(images), "--output", str(notes)) == 2
    assert f"--output {notes} is a file; expected a folder" in capsys.readouterr().err
    shutil.copy(images / "a.png", images / "a_overlay.png")
    out = tmp_path / "out"
    assert run_predict(checkpoint, "--input", str(images), "--output", str(out), "--overlay") == 2
    err = capsys.readouterr().err
    assert f"{images / 'a.png'} and {images / 'a_overlay.png'} would both write {out / 'a_overlay.png'}" in err
    assert notes.read_text() == "keep me" and not out.exists()


def test_existing_outputs_are_kept_unless_overwrite(checkpoint, images, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.png", "c.png"):
        (out / name).write_bytes(b"earlier result")
    before = snapshot(tmp_path)
    assert run_predict(checkpoint, "--input", str(images), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert (f"2 output file(s) exist already in {out}, e.g. a.png, c.png; pass --overwrite to replace them, or "
            "choose another --output") in err
    assert snapshot(tmp_path) == before  # b.png was not predicted either: nothing starts
    assert run_predict(checkpoint, "--input", str(images), "--output", str(out), "--overwrite") == 0
    after = snapshot(tmp_path, leave_out=out)
    assert after == {k: v for k, v in before.items() if not k.startswith("out/")}
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    for name in ("a.png", "c.png"):
        assert read_image(out / name).shape == (48, 48)  # replaced by label images


def test_existing_outputs_python_api(checkpoint, images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_overlay.png").write_bytes(b"earlier overlay")
    with pytest.raises(OutputConflictError, match=r"1 output file\(s\) exist already .* b_overlay\.png") as info:
        predict(checkpoint, [images], out, overlays=True, device="cpu")
    assert isinstance(info.value, DataError)
    assert [p.name for p in out.iterdir()] == ["b_overlay.png"]
    assert predict(checkpoint, [images], out, device="cpu") == [out / "a.png", out / "b.png", out / "c.png"]
    written = predict(checkpoint, [images], out, overlays=True, device="cpu", overwrite=True)
    assert written == [out / "a.png", out / "b.png", out / "c.png"]
    assert (out / "b_overlay.png").read_bytes() != b"earlier overlay"


def test_a_corrupt_image_does_not_stop_the_others(checkpoint, images, tmp_path, capsys):
    (images / "b2.png").write_bytes(b"not an image at all")  # sorted between b.png and c.png
    (images / "d.png").write_bytes(b"")
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    assert run_predict(checkpoint, "--input", str(images), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert "2 of 5 image(s) could not be predicted: " in err
    assert f"{images / 'b2.png'}: cannot read the image" in err and f"{images / 'd.png'}: " in err
    assert f"The other 3 label image(s) are in {out}; fix or remove the failed image(s)" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]  # c.png came after the bad one
    for name in ("a.png", "b.png", "c.png"):
        assert read_image(out / name).shape == (48, 48)
    assert snapshot(tmp_path, leave_out=out) == before


def test_failures_python_api_and_block_mode(checkpoint, images, tmp_path):
    tifffile.imwrite(images / "big.tif", np.zeros((40, 30), np.uint8))
    (images / "broken.tif").write_bytes(b"II*\x00 truncated")
    out = tmp_path / "out"
    with pytest.raises(PredictionFailures) as info:
        predict(checkpoint, [images], out, device="cpu", block=256, halo=8)
    failure = info.value
    assert isinstance(failure, DataError)
    assert [p.name for p, _ in failure.failures] == ["broken.tif"]
    assert failure.failures[0][1].startswith(f"{images / 'broken.tif'}: ")  # the reader's message, naming the file
    assert failure.written == [out / "a.png", out / "b.png", out / "big.tif", out / "c.png"]
    assert failure.total == 6 - 1 and "1 of 5 image(s) could not be predicted" in str(failure)
    assert tifffile.imread(out / "big.tif").shape == (40, 30)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "big.tif", "c.png"]


def test_an_error_that_is_not_about_one_image_stops_at_once(checkpoint, images, tmp_path, monkeypatch):
    calls = []

    def disk_full(self, source, *args, **kwargs):
        calls.append(Path(source).name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module.PredictionWriter, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        predict(checkpoint, [images], tmp_path / "out", device="cpu")
    assert calls == ["a.png"]


def test_stale_temporary_files_are_removed_first(checkpoint, images, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".x.png.abcd.tmp").write_bytes(b"half a png")
    (out / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path, leave_out=out)
    assert run_predict(checkpoint, "--input", str(images), "--output", str(out)) == 0
    assert "removed 1 temporary file(s) an interrupted earlier write left in" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"
    assert snapshot(tmp_path, leave_out=out) == before


def test_a_run_folder_reaches_the_checkpoint_loader(checkpoint, images, tmp_path, monkeypatch):
    # predict itself must not reject a folder: loading it is the checkpoint's business (RUN_DIR/best.safetensors)
    seen = []
    real = files_module.Predictor.from_checkpoint.__func__

    def from_checkpoint(cls, path, *args, **kwargs):
        seen.append(Path(path))
        return real(cls, Path(path) / "best.safetensors" if Path(path).is_dir() else path, *args, **kwargs)

    monkeypatch.setattr(files_module.Predictor, "from_checkpoint", classmethod(from_checkpoint))
    assert run_predict(checkpoint.parent, "--input", str(images), "--output", str(tmp_path / "out")) == 0
    assert seen == [checkpoint.parent]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
