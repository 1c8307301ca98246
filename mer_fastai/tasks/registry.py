"""Every task by name: the one place a task name becomes its `Task` object."""

from __future__ import annotations

from ..bounds import quote
from ..errors import MerError
from .base import DEFAULT_TASK, Task
from .classification import CLASSIFICATION
from .multilabel import MULTILABEL
from .regression import REGRESSION

__all__ = ["get_task", "TASKS"]

TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, REGRESSION, MULTILABEL)}
DEFAULT = TASKS[DEFAULT_TASK]  # the task of records written before tasks existed


def get_task(task: str | Task | None) -> Task:
    """The task object of a name (None: classification, as records written before tasks existed)."""
    if isinstance(task, Task):
        return task
    name = task or DEFAULT_TASK
    if name not in TASKS:
        raise MerError(f"task {quote(name)} is not known; use one of {', '.join(TASKS)}")
    return TASKS[name]


def implied_task(targets: bool) -> Task:
    """The task of a data set prepared without `--task`: regression where `--target` gives targets, else the
    default task."""
    return REGRESSION if targets else DEFAULT
