"""A full disk, however a library reports it, is one line naming the file and the space left."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from mer_fastai._plumbing.diskfull import disk_full_error, writing
from mer_fastai._plumbing.files import atomic_write
from mer_fastai.errors import MerError


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk is full"),
        (OSError(errno.EFBIG, "File too large"), "the file exceeds the size limit"),
        (
            RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "x" })'),
            "the disk is full",
        ),  # fmt: skip
        (
            RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
            "the write failed, most likely a full disk",
        ),
    ],
)
def test_each_way_of_saying_it_names_the_file(error, reason, tmp_path):
    found = disk_full_error(error, tmp_path / "x.bin")
    assert isinstance(found, MerError)
    assert str(found).startswith(f"{tmp_path / 'x.bin'}: could not be written ({reason}; ")
    assert re.search(r"; [\d.]+ (bytes|KB|MB|GB) free there\)", str(found))  # the space left, measured then


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EACCES, "Permission denied"),
        ValueError("bad value"),
        MerError("file write failed"),
        KeyboardInterrupt(),
    ],
)
def test_other_errors_are_left_alone(error, tmp_path):
    assert disk_full_error(error, tmp_path / "x.bin") is None


def test_a_non_atomic_write_that_fails_leaves_no_half_file(tmp_path):
    path = tmp_path / "big.pth"
    with pytest.raises(MerError, match="big.pth: could not be written"), writing(path):
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not path.exists()


def test_an_atomic_write_to_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = atomic_write(tmp_path / "m.json", "old\n")

    def full(self: Path, data: str, encoding: str | None = None) -> int:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(MerError, match="m.json: could not be written .the file exceeds the size limit"):
        atomic_write(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["m.json"]
