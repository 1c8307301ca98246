"""`--executor ray`: a recipe's grid cells as Ray tasks, on this machine or on a Ray cluster.

Each cell is one task (one GPU when the cluster has GPUs, else `cpus_per_cell` CPUs). Results come back
through the runner's `on_result` as they finish, so results.csv, state.json and resume behave as with
the local executor. A task whose worker dies is retried by Ray (`max_retries`); a cell is recorded as
failed only when its training raised or its retries are used up. Workers read the cells' data folders
and write their run folders by path: on a cluster those must be on a filesystem every node shares.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable

from .._plumbing.progress import console, progress_bar
from ..errors import MerError
from ..report.results import SCORE_LABELS, row_task
from .executors import Cell, OnResult, error_message, run_cell

INSTALL_HINT = "Ray is not installed; pip install 'mer-fastai[ray]'"


def _train_cell(cell: Cell) -> dict:
    """The Ray task: train one cell in a worker process (warnings silenced, as the CLI does)."""
    warnings.filterwarnings("ignore")
    return run_cell(cell)


def connect(address: str | None):
    """The `ray` module, connected to `address` (`auto`, `ray://HOST:PORT`) or to a new local Ray."""
    try:
        import ray
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc
    if not ray.is_initialized():  # one Ray per process: later stages of the recipe reuse it
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=True)
    return ray


def execute_ray(
    cells: list[Cell],
    on_result: OnResult,
    *,
    address: str | None = None,
    cpus_per_cell: int = 1,
    max_retries: int = 2,
    task: Callable[[Cell], dict] = _train_cell,
) -> None:
    """Run `cells` as Ray tasks at once and report each one through `on_result` as it finishes."""
    ray = connect(address)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
    remote = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus, max_retries=max_retries)(task)
    pending = {remote.remote(cell): cell for cell in cells}
    where = f"{int(ray.cluster_resources().get('CPU', 0))} CPUs" + (f", {gpus} GPU per cell" if gpus else "")
    console.print(f"{len(cells)} cell(s) submitted to Ray ({where})")
    try:
        _collect(ray, pending, on_result, max_retries)
    except KeyboardInterrupt:  # the tasks stop too: each cleans up its unfinished run folder
        for ref in pending:
            with contextlib.suppress(Exception):  # Ray may be shutting down already
                ray.cancel(ref)
        raise


def _collect(ray, pending: dict, on_result: OnResult, max_retries: int) -> None:
    """Report each task through `on_result` as it finishes (`pending` shrinks as they do)."""
    with progress_bar("cells on Ray", len(pending)) as advance:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ref)
            try:
                row = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the training itself raised: not retried
                cause = exc.cause if isinstance(exc.cause, Exception) else exc
                if not isinstance(cause, MerError):
                    console.print("\n".join(exc.traceback_str.splitlines()[-6:]), style="dim")
                on_result(cell, None, error_message(cause))
            except ray.exceptions.RayError as exc:  # worker or node lost, retries used up
                on_result(cell, None, f"lost after {max_retries} retries: {error_message(exc)}")
            else:
                console.print(done_line(cell, row))
                on_result(cell, row, None)
            advance()


def done_line(cell: Cell, row: dict) -> str:
    """`done <cell>: <score> <value>, <score> <value>`: the first two scores the tables show for the row's task."""
    scores = []
    for name in row_task(row).facts.table_scores[:2]:
        value = row.get(name)
        scores.append(f"{SCORE_LABELS[name]} " + (f"{value:.3f}" if isinstance(value, float | int) else "–"))
    return f"done {cell.id}: {', '.join(scores)}"
