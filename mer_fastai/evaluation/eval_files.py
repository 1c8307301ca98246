"""What `evaluate` writes to its folder: metrics.json, predictions.csv (one row per track) and the task's plots
(a classifier's report and confusion matrix; a regression model's scatters and circumplex; per_label.png)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import write_json
from ..report.views.predictions import write_evaluation_predictions
from ..report.views.registry import views_of
from ..runs.layout import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
)

if TYPE_CHECKING:
    from ..data.labelfiles import ClipLabel
    from ..inference.predict import Predictor
    from ..scoring.scores import Tracks, ValueTracks

FILES = (METRICS_FILE, REPORT_FILE, CONFUSION_FILE, PREDICTIONS_FILE, LABELS_FILE, CIRCUMPLEX_FILE)


def write_evaluation(
    out_dir: Path,
    metrics: dict,
    tracks: Tracks | ValueTracks,
    truth: dict[str, ClipLabel],
    ids: dict[str, str],
    predictor: Predictor,
    windows: dict[str, int],
) -> None:
    """metrics.json, predictions.csv (one row per scored track, as its task's views lay it out; `windows`: each
    file's window count) and the task's plots and reports of the tracks."""
    task, classes = predictor.rules, predictor.classes
    write_json(out_dir / METRICS_FILE, metrics)
    write_evaluation_predictions(out_dir / PREDICTIONS_FILE, task, classes, tracks, truth, ids, windows)
    how = "" if task.facts.chooses_one_label else " (mean of windows)"  # a chosen label: as `--aggregate` says
    title = f"{predictor.meta.arch_summary} · {metrics['feature']} · {metrics['n_tracks']} tracks{how}"
    views_of(task).plot_evaluation(out_dir, metrics, tracks, classes, predictor.meta.scale, title)
