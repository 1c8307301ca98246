"""Folder locks: an output folder's exclusive lock file, and the shared read locks on data set folders.

- a second writer of the same folder is refused at once, naming the holder's PID (`acquire`); the lock of a
  killed writer is taken over with a note (the kernel releases a `flock` with the writer's last process);
- commands that read a data set hold a shared lock on its folder (`reading`) that `prepare` needs exclusively
  before it changes the data set (`excluding_readers`): each is refused at once, naming the other's PID.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import MerError

T = TypeVar("T")

LOCK_FILE = ".lock"


def acquire(path: Path, option: str):
    """Lock `path`'s lock file (a kernel `flock`) and record this process in it: its PID, then its host.

    The kernel releases a `flock` when every process holding it has ended, so a lock whose holder was killed is
    free again: it is taken over with a note naming the PID it records. The PID is never used to decide
    anything (it may have been reused, or belong to another host sharing the folder over the network): only
    to name the holder in messages.
    """
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
        recorded = handle.read()
        handle.close()
        raise _held_error(path, lock_path, recorded, option) from exc
    handle.seek(0)
    pid, host = _recorded(handle.read())
    if pid:
        where = "" if host in ("", socket.gethostname()) else f" on {host}"
        from .progress import console  # a closed stderr drops the note, not the command

        note = f"note: {path}: taking over the lock of PID {pid}{where}, which ended without releasing it"
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n{socket.gethostname()}\n")
    handle.flush()
    return handle


def _recorded(text: str) -> tuple[str, str]:
    """(PID, host) as a lock file records them ("" where it does not; older lock files hold the PID only)."""
    lines = text.split()
    return (lines[0] if lines else ""), (lines[1] if len(lines) > 1 else "")


def _held_error(path: Path, lock_path: Path, recorded: str, option: str) -> MerError:
    """The refusal of a locked folder, naming its holder; where the recorded holder has ended but processes it
    started (e.g. the workers of a killed older version) still hold the lock, naming those."""
    pid, host = _recorded(recorded)
    if host not in ("", socket.gethostname()):
        who = f"PID {pid} on {host}"
    else:
        who = f"PID {pid or 'unknown'}"
        holders = open_by(lock_path)
        if holders and pid not in holders:
            listed = " ".join(holders)
            return MerError(
                f"{path}: the mer-fastai process that locked it (PID {pid or 'unknown'}) has ended, but processes "
                f"it started still hold the lock (PID {listed}); end them (kill {listed}) or choose another {option}"
            )
    return MerError(
        f"{path}: another mer-fastai process ({who}) is writing this folder; wait for it to end or choose another "
        f"{option}"
    )


def open_by(path: Path) -> list[str]:
    """The PIDs of this user's processes that hold `path` open (Linux's /proc; empty where it cannot tell)."""
    try:
        target = os.stat(path)
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    held = os.stat(f"/proc/{pid}/fd/{fd}")
                    if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
                        found.append(pid)
                        break
    return sorted(found, key=int)


def release(handle) -> None:
    """Unlock; the lock file is left (removing it would race with a waiting writer) but emptied."""
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.flush()
    handle.close()


@contextlib.contextmanager
def reading(*folders: str | Path | None) -> Iterator[None]:
    """Hold a shared lock on each data set folder (None: none) while a command reads it.

    Several readers share a folder; `prepare` changes a data set only under `excluding_readers`, so while one
    is running the other is refused at once, naming its PID. Nothing is written: the lock is taken on the
    folder itself (a folder that does not exist is left for the reader to refuse).
    """
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys(Path(f).resolve() for f in folders if f is not None):
            stack.enter_context(_folder_lock(folder, shared=True))
        yield


@contextlib.contextmanager
def excluding_readers(folder: str | Path, option: str = "--out") -> Iterator[None]:
    """Lock `folder` against every reader (`reading`) while it is changed; refused at once while one reads it."""
    with _folder_lock(Path(folder), shared=False, option=option):
        yield


@contextlib.contextmanager
def _folder_lock(folder: Path, *, shared: bool, option: str = "--out") -> Iterator[None]:
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise (_writer_error(folder) if shared else _reader_error(folder, option)) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)  # also for processes forked meanwhile (they share the lock)
    finally:
        os.close(handle)


def _writer_error(folder: Path) -> MerError:
    """A reader refused: `prepare` is changing the data set (its PID is in the folder's lock file)."""
    try:
        holder = _recorded((folder / LOCK_FILE).read_text())[0] or "unknown"
    except OSError:
        holder = "unknown"
    return MerError(
        f"{folder}: `mer-fastai prepare` (PID {holder}) is changing this data set; wait for it to end, then rerun"
    )


def _reader_error(folder: Path, option: str) -> MerError:
    """`prepare` refused: commands are reading the data set (their PIDs from /proc/locks, where there is one)."""
    pids = lock_holders(folder)
    who = f"PID {', '.join(pids)}" if pids else "PID unknown"
    return MerError(
        f"{folder}: a mer-fastai command ({who}) is reading this data set (train, cv, baseline, ...); wait for it "
        f"to end, or choose another {option}"
    )


def lock_holders(path: str | Path) -> list[str]:
    """The PIDs holding a `flock` on `path`, as Linux's /proc/locks lists them (empty where it cannot tell)."""
    try:
        inode = str(os.stat(path).st_ino)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = set()
    for line in lines:  # "3: FLOCK  ADVISORY  READ 1234 08:02:131 0 EOF"; a waiter reads "3: -> FLOCK ..."
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == inode:
            pids.add(fields[4])
    return sorted(pids, key=lambda pid: int(pid) if pid.isdigit() else 0)


def reads_dataset(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a function whose first argument is a data set, its folder or the data set opened (an object with
    its folder as `path`, `tasks.opened.Dataset`): `reading` the folder while the function runs."""

    @functools.wraps(function)
    def wrapper(data_dir, *args, **kwargs) -> T:
        with reading(getattr(data_dir, "path", data_dir)):
            return function(data_dir, *args, **kwargs)

    return wrapper
