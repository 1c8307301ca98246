"""The worker pool: every item's result as it finishes, in this process or in forked ones."""

from __future__ import annotations

import os

import pytest

from mer_fastai._plumbing.workers import completed, worker_count


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
