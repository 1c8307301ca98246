"""Safe output: atomic file writes, output folders that are checked, locked and never left half-made.

Every command that writes results goes through here, so that
- a file is either the old one or the complete new one (`atomic_path`, `atomic_write`), never half of it,
  and no `.tmp` file is left behind when writing fails;
- an output folder is refused in one line when it names a file, cannot be created or is not writable;
- a second writer of the same folder is refused at once, naming the holder's PID (`output_folder`);
- a command that fails before it wrote anything leaves no empty folder behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import MerError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    check_output_file(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes owner-only files; results are meant to be shared
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """`path` as a file to write: its folder is created; a folder at `path` itself is refused."""
    path = Path(path)
    if path.is_dir():
        raise MerError(f"{path}: is a folder; {option} needs a file name here (e.g. {path / 'out'}.json)")
    _make_folder(path.parent, option)
    return path


def _make_folder(path: Path, option: str) -> None:
    if path.exists() and not path.is_dir():
        raise MerError(f"{path}: is a file, not a folder; give {option} a folder path (or remove the file)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise MerError(f"{exc.filename or path}: is a file, not a folder; give {option} another path") from exc
    except OSError as exc:
        raise MerError(f"{path}: cannot create the folder ({exc.strerror}); give {option} another path") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise MerError(f"{path}: is not writable; give {option} a folder you can write to")


@contextlib.contextmanager
def output_folder(path: str | Path, option: str = "--out", *, lock: bool = True) -> Iterator[Path]:
    """Create (if needed) and exclusively lock an output folder for the duration of a command.

    A second process asking for the same folder is refused at once with the holder's PID. If the
    command fails and the folder was created here and holds nothing but the lock, it is removed again.
    """
    path = Path(path)
    existed = path.exists()
    _make_folder(path, option)
    handle = _acquire(path, option) if lock else None
    try:
        yield path
    except BaseException:
        if handle is not None:
            _release(path, handle)
            handle = None
        if not existed:
            _remove_if_empty(path)
        raise
    finally:
        if handle is not None:
            _release(path, handle)


def _acquire(path: Path, option: str):
    lock_path = path / LOCK_FILE
    try:
        handle = lock_path.open("a+")
    except OSError as exc:
        raise MerError(f"{path}: cannot write the lock file ({exc.strerror}); give {option} another path") from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            handle.close()
            raise
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise MerError(
            f"{path}: another mer-fastai process (PID {holder}) is writing this folder; wait for it to end "
            f"or choose another {option}"
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _release(path: Path, handle) -> None:
    """Unlock; the lock file is left (removing it would race with a waiting writer) but emptied."""
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.flush()
    handle.close()


def _remove_if_empty(path: Path) -> None:
    """Remove a folder that holds at most an (unlocked) lock file."""
    with contextlib.suppress(OSError):
        entries = list(path.iterdir())
        if all(entry.name == LOCK_FILE for entry in entries):
            for entry in entries:
                entry.unlink()
            path.rmdir()
