"""What `evaluate` writes to its folder: predictions.csv (one row per track) and metrics.json; what its task's
plots and reports show (a classifier's report and confusion matrix; a regression model's scatters and circumplex;
per_label.png), which its caller draws (`api.evaluation.evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import write_json
from ..runs.layout import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
)
from ..runs.predictions import write_evaluation_predictions
from ..scoring.scores import Tracks, ValueTracks
from ..tasks.base import Task

if TYPE_CHECKING:
    from ..data.labelfiles import ClipLabel
    from ..inference.predict import Predictor

FILES = (METRICS_FILE, REPORT_FILE, CONFUSION_FILE, PREDICTIONS_FILE, LABELS_FILE, CIRCUMPLEX_FILE)


@dataclass
class EvaluationPlots:
    """What an evaluation's plots and reports show: the model's task, the scored tracks, the model's outputs
    (classes, targets or moods) and scale (one [low, high] per output), and the title."""

    task: Task
    tracks: Tracks | ValueTracks
    names: list[str]
    scale: tuple
    title: str


def write_evaluation(
    out_dir: Path,
    metrics: dict,
    tracks: Tracks | ValueTracks,
    truth: dict[str, ClipLabel],
    ids: dict[str, str],
    predictor: Predictor,
    windows: dict[str, int],
) -> EvaluationPlots:
    """predictions.csv (one row per scored track, as its task's layout lays it out; `windows`: each file's window
    count), then metrics.json; returns what the task's plots and reports of the tracks show."""
    task, classes = predictor.rules, predictor.classes
    write_evaluation_predictions(out_dir / PREDICTIONS_FILE, task, classes, tracks, truth, ids, windows)
    write_json(out_dir / METRICS_FILE, metrics)
    how = "" if task.facts.chooses_one_label else " (mean of windows)"  # a chosen label: as `--aggregate` says
    title = f"{predictor.meta.arch_summary} · {metrics['feature']} · {metrics['n_tracks']} tracks{how}"
    return EvaluationPlots(task, tracks, classes, predictor.meta.scale, title)
