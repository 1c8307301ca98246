"""A full disk is one line: which file could not be written and how much space is left, from every writer.

Libraries report it in their own ways: Python's `OSError` (ENOSPC, EFBIG, EDQUOT), safetensors' error text
("StorageFull"), torch.save's `RuntimeError` ("file write failed", no errno). `disk_full_error` recognises each
and names the file; `writing` wraps a library's own non-atomic save (fastai's checkpoints) and removes what
it half wrote.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import MerError

DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# how libraries that hide the errno say it (safetensors: "StorageFull"; torch.save: "file write failed")
DISK_FULL_TEXT = (
    "no space left",
    "file too large",
    "storagefull",
    "filetoolarge",
    "disk quota",
    "quotaexceeded",
    "file write failed",
)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk (or quota, or file-size limit) ran out, however the library raising it says so."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in DISK_FULL
    if not isinstance(exc, Exception) or isinstance(exc, MerError):
        return False
    text = str(exc).lower().replace(" ", "")
    return any(marker.replace(" ", "") in text for marker in DISK_FULL_TEXT)


def disk_full_error(exc: BaseException, path: str | Path, option: str = "--out") -> MerError | None:
    """One line naming the file being written and the space left where `exc` is a full disk; None otherwise."""
    if not is_disk_full(exc):
        return None
    text = str(exc).lower().replace(" ", "")
    if getattr(exc, "errno", None) == errno.EFBIG or "filetoolarge" in text:
        reason = "the file exceeds the size limit"
    elif getattr(exc, "errno", None) is None and "filewritefailed" in text:
        reason = "the write failed, most likely a full disk"
    else:
        reason = "the disk is full"
    return MerError(
        f"{path}: could not be written ({reason}; {free_space(Path(path).parent)} free there); nothing half-written "
        f"was kept: free space, or choose another {option}, then rerun the same command"
    )


@contextlib.contextmanager
def writing(path: str | Path, option: str = "--out") -> Iterator[None]:
    """Write `path` (not atomically, e.g. a library's own save): on a full disk the partial file is removed and
    the failure is one line naming it (`disk_full_error`)."""
    try:
        yield
    except BaseException as exc:
        full = disk_full_error(exc, path, option)
        if full is None:
            raise
        with contextlib.suppress(OSError):
            Path(path).unlink()
        raise full from exc


def free_space(folder: Path) -> str:
    """The space free in `folder` (or its nearest existing parent), e.g. "12.5 MB"; "unknown space" if unreadable."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown space"
    if free < 1000:
        return f"{free:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        free /= 1000
        if free < 1000 or unit == "GB":
            break
    return f"{free:.1f} {unit}"
