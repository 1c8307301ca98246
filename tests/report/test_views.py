"""report.views: each task's views (plots, tables, ONNX wording) found by its type."""

from __future__ import annotations

import pytest

from mer_fastai.report.views.base import TaskViews
from mer_fastai.report.views.classification import ClassificationViews
from mer_fastai.report.views.registry import VIEWS, register_views, views_of
from mer_fastai.tasks.classification import Classification
from mer_fastai.tasks.registry import get_task


def test_views_are_found_by_the_tasks_type_and_a_subclass_shows_as_its_base():
    assert isinstance(views_of(get_task("classification")), ClassificationViews)
    assert views_of(get_task("regression")).task is get_task("regression")

    class Ordinal(Classification):
        name = "ordinal"

    assert type(views_of(Ordinal())) is ClassificationViews

    class OrdinalViews(ClassificationViews):
        pass

    register_views(Ordinal, OrdinalViews)
    try:
        assert type(views_of(Ordinal())) is OrdinalViews and type(views_of(Classification())) is ClassificationViews
    finally:
        del VIEWS[Ordinal]


def test_a_task_without_views_is_refused_by_name():
    class Unshown(type(get_task("regression")).__mro__[1]):  # Task itself
        name = "unshown"

    with pytest.raises(TypeError, match="unshown"):
        views_of(Unshown())
    assert issubclass(ClassificationViews, TaskViews)


def test_views_show_and_lay_out_nothing():
    """Prediction files are run-folder data (`runs.predictions`): the views only show."""
    assert not hasattr(TaskViews, "prediction_columns") and not hasattr(TaskViews, "baseline_windows")
