"""`--executor ray`'s progress lines (the Ray runs themselves are tested in tests/test_scale.py)."""

from __future__ import annotations

from types import SimpleNamespace

from mer_fastai.experiments.ray_executor import done_line


def test_done_line_shows_the_scores_of_the_rows_task():
    cell = SimpleNamespace(id="expA-s1-small-emotions-alexnet-whole-none")
    assert done_line(cell, {"task": "classification", "accuracy": 0.5, "macro_f1": 0.25}) == (
        "done expA-s1-small-emotions-alexnet-whole-none: accuracy 0.500, macro-F1 0.250"
    )
    assert done_line(cell, {"accuracy": 1.0, "macro_f1": 1}).endswith("accuracy 1.000, macro-F1 1.000")  # no task: 0.1
    assert done_line(cell, {"task": "regression", "ccc": 0.61234, "r2": ""}).endswith(": CCC 0.612, R² –")
    assert done_line(cell, {"task": "multilabel", "macro_f1": 0.4, "micro_f1": 0.5}).endswith(
        "macro-F1 0.400, micro-F1 0.500"
    )
