"""Safe output: atomic file writes, output folders that are checked, locked and never left half-made.

Every command that writes results goes through here, so that
- a file is either the old one or the complete new one (`atomic_path`, `atomic_write`), never half of it,
  and no `.tmp` file is left behind when writing fails;
- an output folder is refused in one line when it names a file, cannot be created or is not writable;
- a second writer of the same folder is refused at once, naming the holder's PID (`output_folder`); the lock of a
  killed writer is taken over with a note (the kernel releases it with the writer's last process);
- a command that fails before it wrote anything leaves no empty folder behind;
- the temporary file of a killed write is removed by the next successful write of the same file, unless a
  live writer holds it (`remove_stale_temps`);
- a full disk (or a file-size limit) while writing is one line naming the file and the space left
  (`diskfull`), and a write-protected file is never replaced (`check_output_file`);
- a file a command writes by a user-given name replaces only an empty file or that command's own earlier output,
  which the command recognises (`check_replaceable`; `is_mer_page` for its HTML pages);
- an input that must be a regular file but is a folder, a device or a pipe is one line saying so (`check_input_file`);
- the folder locks themselves (an output folder's, and the shared read locks on data sets) live in `locks`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ..bounds import quote
from ..errors import MerError
from .diskfull import disk_full_error
from .locks import LOCK_FILE, acquire, release

T = TypeVar("T")

TEMP_SUFFIX = re.compile(r"\.[a-z0-9_]{8}\.tmp")  # what `tempfile.mkstemp` adds after atomic_path's ".NAME" prefix
RESERVED_NAMES = {"", ".", ".."}
HEAD_BYTES = 65536  # how much of a file its first line or header is looked for in
GENERATOR_MARK = '<meta name="generator" content="mer-fastai'  # the head of every page mer-fastai writes


def check_component(name: str, what: str, fix: str = "use letters, digits, '-', '_' or '.'") -> str:
    """`name` as one safe path component (no separator, no control character, not `.`/`..`), NFC-normalised.

    `what` says where the name comes from (e.g. "recipe my.yaml: experiment name"); anything else is one
    line naming it and the fix.
    """
    text = unicodedata.normalize("NFC", str(name))
    bad = [c for c in text if c in "/\\" or unicodedata.category(c) == "Cc"]
    if text.strip() in RESERVED_NAMES or bad or text != text.strip():
        shown = ", ".join(sorted({repr(c) for c in bad})) or "a name that is empty, '.', '..' or padded with spaces"
        raise MerError(f"{what} {quote(name)} is not a safe file name ({shown}); {fix}")
    return text


def is_within(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or lies inside it (both resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_inside(root: str | Path, path: str | Path, option: str = "--out") -> Path:
    """`path` resolved, refused in one line unless it lies inside `root` (also resolved)."""
    if not is_within(path, root):
        raise MerError(f"{path}: would be written outside {option} {root}; choose names without '..' or links")
    return Path(path).resolve()


@contextlib.contextmanager
def atomic_path(path: str | Path, option: str = "--out") -> Iterator[Path]:
    """A temporary path beside `path`; on success it replaces `path`, on failure it is removed (`option`: what
    the user sets to choose another place, for the messages)."""
    path = Path(path)
    check_output_file(path, option)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # marks the temporary file as live for `remove_stale_temps`
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes owner-only files; results are meant to be shared
        tmp.replace(path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = disk_full_error(exc, path, option)
        if full is not None:
            raise full from exc
        raise
    finally:
        os.close(handle)
    remove_stale_temps(path)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files (`.NAME.<random>.tmp`) that killed writes of `path` left beside it; those
    a live writer holds (`atomic_path` locks its own) stay. Returns what was removed."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        names = [entry.name for entry in os.scandir(path.parent) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return []
    stale = [
        path.parent / name
        for name in names
        if name.startswith(prefix) and TEMP_SUFFIX.fullmatch(name[len(prefix) - 1 :])
    ]
    return [tmp for tmp in stale if _remove_if_unlocked(tmp)]


def _remove_if_unlocked(tmp: Path) -> bool:
    """Delete `tmp` unless another process holds a lock on it."""
    try:
        handle = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        tmp.unlink()
    except OSError:
        return False
    finally:
        os.close(handle)
    return True


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
    """`path` as a file to write: its folder is created; a folder at `path` itself, or a write-protected file
    (which a rename would silently replace), is refused."""
    path = Path(path)
    if path.is_dir():
        raise MerError(f"{path}: is a folder; {option} needs a file name here (e.g. {path / 'out'}.json)")
    if path.is_file() and is_write_protected(path):
        raise MerError(
            f"{path}: is write-protected, so it is not replaced; make it writable (chmod u+w) to replace it, "
            f"or choose another {option}"
        )
    _make_folder(path.parent, option)
    return path


def check_replaceable(path: str | Path, own: Callable[[Path], bool], command: str, option: str = "--out") -> Path:
    """`path` as a file `command` may write: new, empty, or its own earlier output (`own` says which); anything
    else (a user's file of the same name, a link, a write-protected file) is refused in one line. Nothing is
    created here: the folder is made when the file is written."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return path
    check_output_file(path, option)
    if path.is_symlink():
        raise MerError(f"{path}: is a link, and {command} does not write through links; choose another {option}")
    if path.is_file() and path.stat().st_size == 0:
        return path
    try:
        mine = path.is_file() and own(path)
    except OSError:
        mine = False
    if not mine:
        raise MerError(
            f"{path}: {command} did not write this file (a file of yours?), so it does not replace it; choose "
            f"another {option} (or remove the file)"
        )
    return path


def file_head(path: Path) -> str:
    """The first `HEAD_BYTES` of `path` as text (undecodable bytes replaced)."""
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES).decode("utf-8", errors="replace")


def is_mer_page(path: Path, title: str = "") -> bool:
    """Whether `path` is an HTML page mer-fastai wrote (its generator mark), whose title starts with `title`."""
    head = file_head(path)
    return GENERATOR_MARK in head and f"<title>{title}" in head


def is_write_protected(path: Path) -> bool:
    """Whether the user protected `path` against writing: no write permission for us, or no write bit at all
    (mode 444: root may write it, but was asked not to)."""
    return not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222


def check_input_file(path: str | Path, what: str, fix: str) -> Path:
    """`path` as an input that must be a regular file: missing, a folder, a device or a pipe is one line saying
    which, naming `what` it is ("--labels", "the recipe", ...) and the `fix`."""
    path = Path(path)
    if path.is_dir():
        raise MerError(f"{path}: {what} is a folder, not a file; {fix}")
    if not path.exists():
        raise MerError(f"{path}: {what} not found; {fix}")
    if not path.is_file():
        raise MerError(f"{path}: {what} is not a regular file (a device, pipe or socket); {fix}")
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
    handle = acquire(path, option) if lock else None
    try:
        yield path
    except BaseException:
        if handle is not None:
            release(handle)
            handle = None
        if not existed:
            _remove_if_empty(path)
        raise
    finally:
        if handle is not None:
            release(handle)


def _remove_if_empty(path: Path) -> None:
    """Remove a folder that holds at most an (unlocked) lock file."""
    with contextlib.suppress(OSError):
        entries = list(path.iterdir())
        if all(entry.name == LOCK_FILE for entry in entries):
            for entry in entries:
                entry.unlink()
            path.rmdir()


def write_json(path: Path, values: dict) -> Path:
    """Write JSON atomically, so an interrupted run never leaves half a file."""
    return atomic_write(path, json.dumps(values, indent=2) + "\n")
