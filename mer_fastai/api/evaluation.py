"""`evaluate` as the Python API and the command call it: the loop (`evaluation.evaluator.evaluate`) scores the
model and writes predictions.csv and metrics.json, and this caller draws the task's plots and reports from its
result (a classifier's classification_report.txt and confusion_matrix.png; a regression model's scatters and
circumplex; a multilabel model's per_label.png)."""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Any

from ..evaluation import evaluator
from ..evaluation.evaluator import EvaluationResult
from ..inference.predict import Predictor
from ..report.views.registry import views_of
from .training import drawn

__all__ = ["evaluate", "evaluation_pages"]


# The loop's signature and manual (`help(mer_fastai.evaluate)` shows every option): this function runs the loop,
# `evaluation.evaluator.evaluate`, with the same arguments, then draws the task's plots and reports in `out`.
@wraps(evaluator.evaluate)
def evaluate(model: str | Path | Predictor, audio_dir: str | Path, out: str | Path, **options: Any) -> EvaluationResult:
    result = evaluator.evaluate(model, audio_dir, out, **options)
    evaluation_pages(result)
    return result


def evaluation_pages(result: EvaluationResult) -> None:
    """The task's plots and reports of an evaluation's tracks, drawn once its metrics.json is written: a page that
    cannot be written is a warning line, never a lost result."""
    plots = result.plots
    if plots is None:
        return
    drawn(lambda: views_of(plots.task).plot_evaluation(result.out_dir, result.metrics, plots.tracks, plots.names,
                                                       plots.scale, plots.title))  # fmt: skip
