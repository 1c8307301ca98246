"""Prediction CSV files: each task's window and track rows as a run writes them, and read back for scoring.

A run folder's `valid_predictions.csv` / `track_predictions.csv` and the test split's (`runs.layout.prediction_files`)
hold one row per window / track: ids, then a classifier's truth, prediction and `prob_<class>` columns; a
regression's `true_<target>` and `pred_<target>`; a multilabel's true and predicted moods (`;`-separated) and
`prob_<mood>`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .._plumbing.files import atomic_path
from .metrics import classification_metrics
from .scores import Tracks, ValueTracks


def _probs(values: np.ndarray) -> list[str]:
    return [f"{v:.6f}" for v in values]


def write_window_predictions(path: Path, rows: list, window_probs: np.ndarray, classes: list[str]) -> Path:
    """One CSV row per window (manifest rows `rows`, in order): image, clip, source, start, truth, prediction,
    probabilities (the columns `report.html.predictions` reads)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "clip_id", "source", "segment_start", "true", "predicted", *_heads(classes)])
        for row, probs in zip(rows, window_probs, strict=True):
            predicted = classes[int(np.argmax(probs))]
            start = f"{row.segment_start:.3f}"
            writer.writerow([row.image, row.clip_id, row.source, start, row.label, predicted, *_probs(probs)])
    return path


def write_track_predictions(path: Path, rows: list, tracks: Tracks, classes: list[str]) -> Path:
    """One CSV row per track: clip, source, window count, truth, prediction, aggregated probabilities."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "source", "windows", "true", "predicted", *_heads(classes)])
        for clip, indices, probs, best in zip(tracks.ids, tracks.windows, tracks.probs, tracks.predicted, strict=True):
            first = rows[indices[0]]
            writer.writerow([clip, first.source, len(indices), first.label, classes[int(best)], *_probs(probs)])
    return path


def _heads(classes: list[str]) -> list[str]:
    return [f"prob_{name}" for name in classes]


def write_value_predictions(path: Path, rows: list, predicted: np.ndarray, targets: list[str]) -> Path:
    """One CSV row per regression window: image, clip, source, start, then `true_<t>` and `pred_<t>` per target."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "clip_id", "source", "segment_start", *_value_heads(targets)])
        for row, values in zip(rows, predicted, strict=True):
            start = f"{row.segment_start:.3f}"
            writer.writerow([row.image, row.clip_id, row.source, start, *_values(row.values, values)])
    return path


def write_value_tracks(path: Path, rows: list, tracks: ValueTracks, targets: list[str]) -> Path:
    """One CSV row per regression track: clip, source, window count, `true_<t>` and `pred_<t>` per target."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "source", "windows", *_value_heads(targets)])
        for clip, indices, values, true in zip(tracks.ids, tracks.windows, tracks.predicted, tracks.targets):
            writer.writerow([clip, rows[indices[0]].source, len(indices), *_values(true, values)])
    return path


def _value_heads(targets: list[str]) -> list[str]:
    return [f"{kind}_{name}" for name in targets for kind in ("true", "pred")]


def _values(true, predicted) -> list[str]:
    return [f"{v:.6f}" for pair in zip(true, predicted, strict=True) for v in pair]


def write_mood_predictions(
    path: Path, rows: list, probs: np.ndarray, moods: list[str], threshold: float, tracks: ValueTracks | None = None
) -> Path:
    """One CSV row per window (or, given `tracks`, per track): ids, the true and predicted moods
    (`;`-separated) and each mood's probability (`prob_<mood>`)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        ids = ["clip_id", "source", "windows"] if tracks else ["image", "clip_id", "source", "segment_start"]
        writer.writerow([*ids, "true", "predicted", *_heads(moods)])
        if tracks:
            items = [([clip, rows[w[0]].source, len(w)], t, p) for clip, w, t, p in
                     zip(tracks.ids, tracks.windows, tracks.targets, tracks.predicted)]  # fmt: skip
        else:
            items = [
                ([r.image, r.clip_id, r.source, f"{r.segment_start:.3f}"], r.values, p) for r, p in zip(rows, probs)
            ]
        for cells, true, values in items:
            chosen = ";".join(m for m, v in zip(moods, values) if v >= threshold)
            writer.writerow([*cells, ";".join(m for m, t in zip(moods, true) if t), chosen, *_probs(values)])
    return path


def output_matrix(rows: list[dict], prefix: str, names: list[str]) -> np.ndarray:
    """The `<prefix>_<name>` columns of prediction rows read back (`prob`, `pred`, `true`) as a (rows, names) array."""
    return np.array([[float(row[f"{prefix}_{name}"]) for name in names] for row in rows]).reshape(len(rows), len(names))


def mood_flags(rows: list[dict], moods: list[str]) -> np.ndarray:
    """The true moods of multilabel prediction rows (`true`: `;`-separated) as 1/0 per mood."""
    return np.array([[float(mood in row["true"].split(";")) for mood in moods] for row in rows])


def label_metrics(rows: list[dict], classes: list[str]) -> dict:
    """`classification_metrics` of classifier prediction rows read back (`true`, `predicted`)."""
    index = {name: i for i, name in enumerate(classes)}
    targets = np.array([index[row["true"]] for row in rows])
    predicted = np.array([index[row["predicted"]] for row in rows])
    return classification_metrics(targets, predicted, classes)
