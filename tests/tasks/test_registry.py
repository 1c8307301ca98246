"""tasks.registry: a task name becomes its one Task object; every task declares what the others ask."""

from __future__ import annotations

import pytest

from mer_fastai.choices import MONITORS
from mer_fastai.data.dataset import DatasetInfo
from mer_fastai.errors import MerError
from mer_fastai.tasks.base import DEFAULT_TASK, Task
from mer_fastai.tasks.registry import TASKS, get_task


def test_every_task_is_registered_by_its_name():
    assert list(TASKS) == ["classification", "regression", "multilabel"]  # the order options list them in
    assert all(get_task(name).name == name and str(get_task(name)) == name for name in TASKS)
    assert DatasetInfo("f", [], None, 0, 0, {}).task == DEFAULT_TASK and TASKS[DEFAULT_TASK].is_default


def test_prepare_s_task_help_lists_the_registry():
    from mer_fastai.cli.prepare import TASK_HELP

    assert all(f"{name} ({task.facts.described}" in TASK_HELP for name, task in TASKS.items())


def test_a_record_without_task_is_classification_and_a_task_passes_through():
    assert get_task(None) is get_task("classification")
    assert get_task(None).is_default and not get_task("regression").is_default
    task = get_task("multilabel")
    assert get_task(task) is task


def test_an_unknown_task_is_one_line_naming_the_known_ones():
    with pytest.raises(MerError) as caught:
        get_task("ordinal")
    message = str(caught.value)
    assert "\n" not in message and "'ordinal'" in message and all(name in message for name in TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_each_task_declares_every_rule(name):
    task = get_task(name)
    declared = [k for k, v in vars(Task).get("__annotations__", {}).items() if "ClassVar" in str(v)]
    assert declared and [k for k in declared if not hasattr(task, k)] == []
    assert set(task.facts.monitors) <= set(MONITORS) and task.facts.monitors[-1] == "valid_loss"
    assert task.facts.table_scores[0] in task.facts.scores
    assert task.columns(["a", "b"]) == [f"{task.facts.column_prefix}_a", f"{task.facts.column_prefix}_b"]
