"""The task as facts and maths: one frozen record of its facts, a small class, and nothing of the report."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from mer_fastai.tasks.base import Task, TaskFacts
from mer_fastai.tasks.registry import TASKS, get_task

TASKS_DIR = Path(__file__).resolve().parents[2] / "mer_fastai" / "tasks"
MAX_MEMBERS = 30
PRESENTATION = ("plots", "report", "runs")  # what tasks/ must not import: the report side and run files


def members(kind: type) -> set[str]:
    """The public names a task class offers (its own and its bases')."""
    return {name for klass in kind.__mro__ if klass is not object for name in vars(klass) if not name.startswith("_")}


@pytest.mark.parametrize("name", TASKS)
def test_a_task_is_its_name_its_facts_and_at_most_30_members(name):
    task = get_task(name)
    assert len(members(type(task))) <= MAX_MEMBERS, sorted(members(type(task)))
    assert isinstance(task.facts, TaskFacts) and dataclasses.is_dataclass(task.facts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.facts.scores = ()  # type: ignore[misc]
    assert len(members(Task)) <= MAX_MEMBERS


def test_the_tasks_facts_differ_where_the_tasks_do():
    facts = {name: get_task(name).facts for name in TASKS}
    assert len({f.names_key for f in facts.values()}) == len(TASKS)
    assert facts["multilabel"].decision == 0.5 and facts["classification"].decision is None
    assert facts["regression"].predicts_values and facts["regression"].takes_loss
    assert facts["classification"].chooses_one_label and facts["classification"].refused_options == ()


def test_tasks_imports_nothing_of_plots_report_or_run_files():
    found = []
    for path in TASKS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:  # from ..<package> import ...
                modules = [f"mer_fastai.{node.module}"]
            elif isinstance(node, ast.ImportFrom | ast.Import):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            else:
                continue
            found += [f"{path.name}:{node.lineno}: {m}" for m in modules if m.split(".")[:2][-1] in PRESENTATION]
    assert found == []


def test_a_facts_old_attribute_name_still_reads_with_a_deprecation_warning():
    task = get_task("regression")
    with pytest.warns(DeprecationWarning, match=r"Task\.monitors moved to Task\.facts\.monitors"):
        assert task.monitors == task.facts.monitors  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="plot_split"):
        task.plot_split  # type: ignore[attr-defined]  # noqa: B018  (a view now: report.views)


def test_the_package_reads_facts_by_their_new_names():
    fields = "|".join(f.name for f in dataclasses.fields(TaskFacts))
    old = re.compile(rf"\b(task|kind|rules|get_task\([^()]*(\([^()]*\))?[^()]*\))\.({fields})\b")
    package = TASKS_DIR.parent
    found = [f"{p.relative_to(package)}:{n}: {line.strip()}" for p in package.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if old.search(line)]  # fmt: skip
    assert found == []


def test_a_new_tasks_facts_must_state_what_every_task_has():
    with pytest.raises(TypeError, match="scores"):
        TaskFacts(names_key="levels", learned="level", column_prefix="prob", label_columns=("label",),
                  prediction_fields=("label",), monitors=("valid_loss",), table_scores=("mae",), per_output="per_class",
                  report_errors="mistakes", baseline_estimator="classifier", baseline_scores=("mae",))  # fmt: skip
