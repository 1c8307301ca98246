"""Each task's views, found by its type: the one place a task class meets the code that shows its results.

`views_of(task)` walks the task's class and its bases (as fastai's `show` methods dispatch on a target's type), so
a subclass of a task shows as that task until views of its own are registered (`register_views`).
"""

from __future__ import annotations

from ...tasks.base import Task, registered_for
from ...tasks.classification import Classification
from ...tasks.multilabel import Multilabel
from ...tasks.regression import Regression
from .base import TaskViews
from .classification import ClassificationViews
from .multilabel import MultilabelViews
from .regression import RegressionViews

__all__ = ["views_of", "register_views"]

VIEWS: dict[type[Task], type[TaskViews]] = {
    Classification: ClassificationViews,
    Regression: RegressionViews,
    Multilabel: MultilabelViews,
}


def register_views(task_type: type[Task], views: type[TaskViews]) -> None:
    """Show the tasks of `task_type` (and its subclasses without views of their own) with `views`."""
    VIEWS[task_type] = views


def views_of(task: Task) -> TaskViews:
    """The views of `task`: those registered for its class or the nearest of its bases."""
    return registered_for(VIEWS, task, "views", "them with report.views.registry.register_views")(task)
