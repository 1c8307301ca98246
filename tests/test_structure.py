"""The package's shape: sub-packages in layers, small modules, task rules in `tasks` alone.

Run `python -m tests.test_structure` for the report these tests check.
"""

from __future__ import annotations

import ast
import re

from tests.test_imports import PACKAGE, import_graph

# Each sub-package's layer: a module imports only from its own package or from a lower layer.
LAYERS = {
    "mer_fastai": 0,  # errors, choices, _version (the version, written once), the facade
    "_plumbing": 1,  # files, journals, progress bars, the worker pool
    "data": 2,  # audio, spectrograms, labels, splits, the data-set schema
    "runs": 3,  # the run / cv / grid folder schema, input guards
    "scoring": 3,  # metric and aggregation functions
    "plots": 4,  # figures and terminal tables
    "tasks": 5,  # classification, regression, multilabel
    "models": 6,  # architectures, networks, weights, model files, the input contract
    "report": 7,  # results tables, the HTML report
    "preparation": 7,  # audio + labels -> data set
    "inference": 8,  # predict, embed, export
    "training": 9,  # settings, loaders, learner, fit
    "evaluation": 10,  # evaluate, cv, ensemble, baseline
    "gan": 10,  # GAN augmentation
    "experiments": 11,  # recipes, runner, executors, demo
    "cli": 12,  # one module per subcommand (and `python -m mer_fastai`)
}
MAX_LINES = 400
MAX_TASK_BRANCHES = 10
TASK_NAMES = r"(classification|regression|multilabel)"
# A comparison with, or a lookup keyed by, a task name; or a task test by property.
BRANCH = re.compile(
    rf"""(==|!=|\bin\b)\s*\(?\s*["']{TASK_NAMES}["']|["']{TASK_NAMES}["']\s*(==|!=|:)|\.is_(regression|multilabel)\b"""
)


def package_of(module: str) -> str:
    if module == "mer_fastai.__main__":
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "mer_fastai"


def layer_violations() -> list[str]:
    found = []
    for module, targets in import_graph().items():
        here = package_of(module)
        for target in targets:
            there = package_of(target)
            if there != here and LAYERS[there] >= LAYERS[here]:
                found.append(f"{module} -> {target}")
    return sorted(found)


def long_modules() -> list[str]:
    return sorted(
        f"{p.relative_to(PACKAGE.parent)}: {n}"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    )


def task_branches() -> list[str]:
    """Task-name branches outside `mer_fastai/tasks` (comments and docstrings left out)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "tasks":
            continue
        strings = {
            (n.lineno, n.end_lineno)
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
        }
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(a <= number <= b for a, b in strings):
                continue
            found += [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"] * len(BRANCH.findall(code))
    return found


def test_sub_packages_are_layered():
    assert set(package_of(m) for m in import_graph()) <= set(LAYERS)
    assert layer_violations() == []


def test_no_module_is_long():
    assert long_modules() == []


def test_task_rules_live_in_tasks():
    branches = task_branches()
    assert len(branches) <= MAX_TASK_BRANCHES, "\n".join(branches)


def test_sub_package_inits_are_empty():
    assert [str(p) for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE and p.read_text().strip()] == []


if __name__ == "__main__":
    for title, items in (("layer violations", layer_violations()), ("modules over 400 lines", long_modules()),
                         ("task branches outside tasks", task_branches())):  # fmt: skip
        print(f"# {title}: {len(items)}")
        print("\n".join(items))
