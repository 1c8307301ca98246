"""What `evaluate` writes to its folder: metrics.json, predictions.csv (one row per track) and the task's plots
(a classifier's report and confusion matrix; a regression model's scatters and circumplex; per_label.png)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import atomic_path, atomic_write, write_json
from ..plots.figures import circumplex_axes, plot_circumplex, plot_confusion, plot_label_bars, plot_scatter
from ..runs.layout import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    LABELS_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    scatter_file,
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
    plot_confusion(out_dir / CONFUSION_FILE, metrics["confusion_matrix"], predictor.classes, title)
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
    if task.predicts_values:
        heads = [f"{k}_{n}" for n in classes for k in ("true", "pred")]
    else:
        heads = ["true", "predicted", *task.columns(classes)]
    with atomic_path(out_dir / PREDICTIONS_FILE) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "clip_id", "group", "windows", *heads])
        for file, predicted, true in zip(tracks.ids, tracks.predicted, tracks.targets):
            if task.predicts_values:
                cells = [f"{v:.6f}" for pair in zip(true, predicted) for v in pair]
            else:  # the moods: true, predicted at the decision, and each mood's probability
                cells = [";".join(m for m, t in zip(classes, true) if t), task.describe(classes, predicted),
                         *(f"{p:.6f}" for p in predicted)]  # fmt: skip
            writer.writerow([file, ids[file], truth[file].group or "", windows[file], *cells])
    if not task.predicts_values:
        plot_label_bars(out_dir / LABELS_FILE, metrics["per_label"], title)
        return
    scale = {name: list(pair) for name, pair in zip(classes, predictor.meta.scale)}
    for i, name in enumerate(classes):
        plot_scatter(out_dir / scatter_file(name), tracks.predicted[:, i], tracks.targets[:, i], scale[name], name,
                     title)  # fmt: skip
    axes = circumplex_axes(classes)
    if axes:
        plot_circumplex(out_dir / CIRCUMPLEX_FILE, tracks.predicted, tracks.targets, axes, classes, scale, title)
