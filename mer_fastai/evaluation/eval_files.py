"""What `evaluate` writes to its folder: metrics.json, predictions.csv (one row per track) and the task's plots
(a classifier's report and confusion matrix; a regression model's scatters and circumplex; per_label.png)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import atomic_path, atomic_write, write_json
from ..runs.layout import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
)
from ..scoring.metrics import text_report

if TYPE_CHECKING:
    from ..data.labelfiles import ClipLabel
    from ..inference.predict import Predictor
    from ..inference.tracks import Predictions
    from ..scoring.scores import Tracks, ValueTracks

FILES = (METRICS_FILE, REPORT_FILE, CONFUSION_FILE, PREDICTIONS_FILE, LABELS_FILE, CIRCUMPLEX_FILE)


def write_label_report(
    out_dir: Path,
    metrics: dict,
    tracks: Tracks,
    predictions: Predictions,
    truth: dict[str, ClipLabel],
    ids: dict[str, str],
    predictor: Predictor,
) -> None:
    """A classifier's report, metrics, confusion matrix and predictions.csv (one row per track, as scored)."""
    classes = predictor.classes
    atomic_write(out_dir / REPORT_FILE, text_report(tracks.targets, tracks.predicted, classes))
    write_json(out_dir / METRICS_FILE, metrics)
    title = f"{predictor.meta.arch_summary} · {metrics['feature']} · {metrics['n_tracks']} tracks"
    predictor.rules.plot_evaluation(out_dir, metrics, tracks, classes, predictor.meta.scale, title)
    columns = ["file", "clip_id", "group", "true", "predicted", "correct", "windows"]
    with atomic_path(out_dir / PREDICTIONS_FILE) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns + [f"prob_{name}" for name in predictor.classes])
        scored = {
            file: (probs, classes[int(best)]) for file, probs, best in zip(tracks.ids, tracks.probs, tracks.predicted)
        }
        for track in predictions:
            clip = truth[track.file]
            probs, label = scored[track.file]
            writer.writerow(
                [
                    track.file,
                    ids[track.file],
                    clip.group or "",
                    clip.label,
                    label,
                    int(label == clip.label),
                    track.n_windows,
                    *(f"{p:.6f}" for p in probs),
                ]
            )


def write_value_report(
    out_dir: Path,
    metrics: dict,
    tracks: ValueTracks,
    truth: dict[str, ClipLabel],
    ids: dict[str, str],
    predictor: Predictor,
    windows: dict[str, str],
) -> None:
    """metrics.json, predictions.csv (one row per track: true and predicted values, or true and predicted
    moods and the mood probabilities; `windows`: each file's window count) and the plots of tracks (scatter per
    target and circumplex, or per_label)."""
    classes, task = predictor.classes, predictor.rules
    write_json(out_dir / METRICS_FILE, metrics)
    title = f"{predictor.meta.arch_summary} · {metrics['feature']} · {metrics['n_tracks']} tracks (mean of windows)"
    heads = task.track_columns(classes)
    with atomic_path(out_dir / PREDICTIONS_FILE) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "clip_id", "group", "windows", *heads])
        for file, predicted, true in zip(tracks.ids, tracks.predicted, tracks.targets):
            cells = task.track_cells(classes, true, predicted)
            writer.writerow([file, ids[file], truth[file].group or "", windows[file], *cells])
    task.plot_evaluation(out_dir, metrics, tracks, classes, predictor.meta.scale, title)
