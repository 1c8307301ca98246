"""The one worker pool: call a function on many items in forked processes, yielding each result as it finishes.

Workers end with the process that started them: on Linux the kernel sends each one SIGKILL when its parent ends
(`prctl(PR_SET_PDEATHSIG)`, however the parent ended: `kill -9` included), and a worker whose parent ended
before it could ask for that exits at once. So a killed command leaves no worker behind writing into its output
or holding its folder's lock. (Elsewhere only the check at start is made.) The kernel's signal follows the thread
that started the workers, so a pool lives within the one call that iterates it, as `completed` does.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import TypeVar

from ..bounds import Bounds

Item = TypeVar("Item")
Result = TypeVar("Result")
AHEAD = 4  # items submitted per worker before waiting for one to finish
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WORKERS = Bounds(0, 1024, whole=True)  # --workers: 0 (every core) up to this many processes


def worker_count(workers: int | None, jobs: int) -> int:
    """The processes to use for `jobs` items: `workers` (default: every core), never more than the items, at least 1.

    `workers` outside `WORKERS` is refused, naming --workers."""
    WORKERS.check(workers, "--workers")
    return max(1, min(workers or os.cpu_count() or 1, jobs or 1))


def completed(
    function: Callable[..., Result], items: Iterable[Item], workers: int, *args: object
) -> Iterator[tuple[Item, Result]]:
    """`(item, function(item, *args))` for every item, as each finishes.

    `workers` 1: in this process, in order. More: in that many forked processes (they inherit what this process
    has loaded), in the order they finish. Items are drawn from `items` only as they are submitted (at most
    `AHEAD` per worker waiting), so a generator may record each one as it starts. An exception raised by
    `function` is raised here.
    """
    if workers <= 1:
        for item in items:
            yield item, function(item, *args)
        return
    context = get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=end_with_parent, initargs=(os.getpid(),)) as pool:
        pending: dict[Future, Item] = {}
        queue = iter(items)
        while True:
            for item in queue:
                pending[pool.submit(function, item, *args)] = item
                if len(pending) >= workers * AHEAD:
                    break
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield pending.pop(future), future.result()


def end_with_parent(parent: int) -> None:
    """In a worker: have the kernel kill it when its parent ends (Linux), and exit now if `parent` already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the line above: nobody waits for this worker
        os._exit(1)
