"""The training options a task takes, each rule worded once: `train`, `lrfind`, `cv` (`fit.task_monitor`) and
recipes (`experiments.recipe_checks`) ask, a recipe naming its keys where the command line names flags."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import MerError
from ..tasks.base import Task
from .config import flag

__all__ = ["check_task_options", "check_class_options"]

# What each option a task may refuse (`TaskFacts.refused_options`: those on class labels) does.
REFUSED = {
    "mixup": "blends class labels",
    "label_smoothing": "spreads class labels",
    "balanced": "weights classes",
    "extra_train_dirs": "adds class folders",
}


def check_task_options(
    settings: Mapping[str, Any], task: Task, name: Callable[[str], str] | None = None, what: str = "data set"
) -> str:
    """The score that picks the kept epoch (`monitor`; `auto`: the task's main score), once the training `settings`
    (by field name: a `TrainConfig`'s, or a recipe's) are checked against the `task`: its scores, its loss, and no
    option on class labels for a task without classes. One line naming a setting as `name(field)` says (default:
    its CLI flag) and what `what` (a data set, a recipe) of that task takes instead."""
    name = name or flag
    chosen, monitors = settings["monitor"], task.facts.monitors
    monitor = chosen if chosen != "auto" else monitors[0]
    if monitor not in monitors:
        raise MerError(
            f"{name('monitor')} {chosen}: not a score of a {task} {what}; choose auto or {' or '.join(monitors)}"
        )
    if not task.facts.takes_loss and settings["loss"] != "auto":
        raise MerError(
            f"{name('loss')} {settings['loss']}: is a regression loss (classification uses cross-entropy, multilabel "
            "BCE); drop it"
        )
    check_class_options(settings, task, name, what)
    return monitor


def check_class_options(
    settings: Mapping[str, Any], task: Task, name: Callable[[str], str] | None = None, what: str = "data set"
) -> None:
    """No option on class labels (`TaskFacts.refused_options`) set for a `task` without classes (`name`, `what` as
    in `check_task_options`; the loaders ask too, for their own `balanced` and `extra_train_dirs`)."""
    name = name or flag
    for field in task.facts.refused_options:
        if settings.get(field):
            raise MerError(f"{name(field)} {REFUSED[field]}; a {task} {what} has no classes: drop it")
