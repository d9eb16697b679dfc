"""Atomic writes: the umask decides the mode, failures leave nothing behind, stale temporaries are cleared."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from unetseg.fileio import (atomic_path, atomic_write_text, atomic_write_with, is_temporary,
                            remove_stale_temporaries)


@pytest.fixture
def umask():
    """Set the umask for one test and restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_with(tmp_path / "b.bin", lambda p: p.write_bytes(b"y"))
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert os.umask(mask) == mask  # reading the umask left it as it was


def test_a_failed_write_keeps_the_old_file_and_names_the_destination(tmp_path):
    target = tmp_path / "out.png"
    target.write_text("old")

    def full_disk(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        atomic_write_with(target, full_disk)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_an_oserror_without_errno_keeps_its_message(tmp_path):
    with pytest.raises(OSError, match="^disk full$"):
        with atomic_path(tmp_path / "x"):
            raise OSError("disk full")


def test_remove_stale_temporaries_keeps_other_files(tmp_path):
    stale = [tmp_path / ".best.safetensors.k2j_x9ab.tmp", tmp_path / ".a.png.abcdefgh.tmp"]
    kept = [tmp_path / "best.safetensors", tmp_path / "a.tmp", tmp_path / ".hidden", tmp_path / ".x.tmp",
            tmp_path / "notes.abcdefgh.tmp"]
    for path in stale + kept:
        path.write_text("x")
    (tmp_path / ".sub.abcdefgh.tmp").mkdir()  # a folder is never removed
    nested = tmp_path / "run" / ".c.png.abcdefgh.tmp"
    nested.parent.mkdir()
    nested.write_text("x")
    assert remove_stale_temporaries(tmp_path) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert (tmp_path / ".sub.abcdefgh.tmp").is_dir() and nested.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_remove_stale_temporaries_finds_what_atomic_path_leaves(tmp_path):
    """A process killed inside ``atomic_path`` leaves exactly the kind of file that is cleared."""
    with atomic_path(tmp_path / "labels.png") as tmp:
        leftover = tmp
    assert not leftover.exists()
    manager = atomic_path(tmp_path / "labels.png")
    tmp = manager.__enter__()  # entered, never left: as if the process had been killed while writing
    tmp.write_bytes(b"partial")
    assert is_temporary(tmp) and remove_stale_temporaries(tmp_path) == [tmp]
    assert list(tmp_path.iterdir()) == [tmp_path / "labels.png"]
