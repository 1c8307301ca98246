"""The worker pool: every item's result as it finishes, in this process or in forked ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mer_fastai._plumbing.files import output_folder
from mer_fastai._plumbing.workers import completed, worker_count
from mer_fastai.errors import MerError


def square_plus(item: int, offset: int) -> tuple[int, int]:
    return item * item + offset, os.getpid()


def fail_on_three(item: int) -> int:
    if item == 3:
        raise ValueError("three")
    return item


def test_worker_count_uses_every_core_but_never_more_than_the_items():
    assert worker_count(None, 10_000) == (os.cpu_count() or 1)
    assert worker_count(8, 3) == 3
    assert worker_count(2, 0) == worker_count(0, 0) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_every_item_gives_its_result_once(workers):
    started = []

    def items():
        for item in range(10):
            started.append(item)  # drawn only when submitted: a generator may record each start
            yield item

    results = {item: result for item, (result, _) in completed(square_plus, items(), workers, 1)}
    assert results == {item: item * item + 1 for item in range(10)} and started == list(range(10))


def test_one_worker_runs_in_order_in_this_process_and_more_fork():
    one = list(completed(square_plus, [3, 1, 2], 1, 0))
    assert [item for item, _ in one] == [3, 1, 2] and {pid for _, (_, pid) in one} == {os.getpid()}
    forked = list(completed(square_plus, range(8), 2, 0))
    assert os.getpid() not in {pid for _, (_, pid) in forked}


def test_items_are_drawn_as_they_are_submitted():
    drawn = []

    def items():
        for item in range(100):
            drawn.append(item)
            yield item

    first = next(completed(square_plus, items(), 2, 0))
    assert first[0] in drawn and len(drawn) <= 2 * 4 + 1  # at most AHEAD per worker waiting, not all 100


@pytest.mark.parametrize("workers", [1, 2])
def test_an_exception_in_the_function_is_raised_here(workers):
    with pytest.raises(ValueError, match="three"):
        list(completed(fail_on_three, range(6), workers))


# --- #26 C: workers die with their parent; the lock of a killed command is taken over -----------------------------

KILLED_POOL = """
import os, sys, time
from pathlib import Path
from mer_fastai._plumbing.files import output_folder
from mer_fastai._plumbing.workers import completed

def slow(item, folder):
    (Path(folder) / f"worker-{os.getpid()}").touch()
    time.sleep(0.2)
    return item

with output_folder(sys.argv[1]):
    for _ in completed(slow, range(1000), 2, sys.argv[1]):
        pass
"""


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_killed_command_leaves_no_worker_and_its_lock_is_taken_over(tmp_path, capsys, signal_number):
    folder = tmp_path / "out"
    script = tmp_path / "pool.py"
    script.write_text(KILLED_POOL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, str(script), str(folder)], env=env)
    try:
        assert _wait(lambda: len(list(folder.glob("worker-*"))) >= 2), "the workers never started"
        workers = [int(path.name.removeprefix("worker-")) for path in folder.glob("worker-*")]
        assert all(_alive(pid) for pid in workers)
        parent.send_signal(signal_number)
        parent.wait(timeout=20)
        assert _wait(lambda: not any(_alive(pid) for pid in workers)), "a worker outlived its parent"
    finally:
        parent.kill()
    with output_folder(folder):
        pass
    assert f"taking over the lock of PID {parent.pid}, which ended without releasing it" in capsys.readouterr().err


def test_a_lock_still_held_by_the_workers_of_an_ended_command_names_them(tmp_path):
    """As an older version's orphaned workers did: the recorded PID has ended, another process holds the lock."""
    folder = tmp_path / "out"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; h = open(sys.argv[1], 'a+'); "
         "fcntl.flock(h, fcntl.LOCK_EX); print(flush=True); time.sleep(60)", str(folder / ".lock")],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        holder.stdout.readline()
        (folder / ".lock").write_text("999999999\n")  # no such process
        refused = pytest.raises(MerError, match=rf"\(PID 999999999\) has ended, .* hold the lock \(PID {holder.pid}\)")
        with refused, output_folder(folder):
            pass
    finally:
        holder.kill()
        holder.wait()
