"""Window and track scores: the one place that turns window probabilities into track labels and scores.

`train` (validation and test splits), `evaluate` and `predict` all aggregate a clip's windows with
`aggregate` and score with `score_windows`, so their numbers cannot disagree.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .choices import AGGREGATES
from .errors import MerError
from .files import atomic_path
from .report import classification_metrics


def check_aggregate(method: str) -> None:
    """A clear error for an unknown --aggregate."""
    if method not in AGGREGATES:
        raise MerError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATES)}")


def aggregate(window_probs: np.ndarray, method: str = "mean") -> tuple[np.ndarray, int]:
    """The probabilities (n_classes,) and class index of one track from its windows' (n_windows, n_classes).

    mean: the mean window probability and its argmax; vote: the class most windows predict (ties go to the
    higher mean probability), with the mean probabilities; max: each class's highest window probability,
    rescaled to sum to 1, and its argmax.
    """
    check_aggregate(method)
    probs = np.asarray(window_probs, dtype=np.float64)
    if probs.ndim != 2 or not len(probs):
        raise ValueError("aggregate needs a (windows, classes) array with at least one window")
    mean = probs.mean(axis=0)
    if method == "vote":
        votes = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
        tied = np.flatnonzero(votes == votes.max())
        return mean, int(tied[np.argmax(mean[tied])])
    if method == "max":
        peak = probs.max(axis=0)
        return peak / peak.sum(), int(np.argmax(peak))
    return mean, int(np.argmax(mean))


@dataclass
class Tracks:
    """The tracks of a set of windows: ids in order of first appearance, their windows, probabilities and labels."""

    ids: list[str]
    windows: list[list[int]]  # window indices of each track
    probs: np.ndarray  # (n_tracks, n_classes)
    predicted: np.ndarray  # (n_tracks,) class indices
    targets: np.ndarray  # (n_tracks,) class indices


def tracks_of(window_probs: np.ndarray, targets: np.ndarray, clip_ids: list[str], method: str = "mean") -> Tracks:
    """Group windows by clip id and aggregate each clip; a clip whose windows disagree on the truth is refused."""
    where: dict[str, list[int]] = {}
    for i, clip in enumerate(clip_ids):
        where.setdefault(clip, []).append(i)
    targets = np.asarray(targets)
    rows = []
    for clip, indices in where.items():
        truth = set(targets[indices].tolist())
        if len(truth) != 1:
            raise MerError(f"clip {clip!r}: its windows have different labels; prepare the data set again")
        rows.append(aggregate(window_probs[indices], method))
    n_classes = window_probs.shape[1]
    probs = np.array([p for p, _ in rows]).reshape(-1, n_classes)
    return Tracks(
        list(where),
        list(where.values()),
        probs,
        np.array([best for _, best in rows], dtype=np.int64),
        np.array([targets[indices[0]] for indices in where.values()], dtype=np.int64),
    )


def score_windows(
    window_probs: np.ndarray, targets: np.ndarray, clip_ids: list[str], classes: list[str], method: str = "mean"
) -> tuple[dict, Tracks]:
    """Window scores (top level) and track scores (`track` block, plus `track_accuracy`/`track_macro_f1`).

    Layout: `accuracy`, `macro_f1`, `per_class`, `classes`, `absent_classes`, `confusion_matrix` over
    windows; `n_windows`, `n_tracks`, `aggregate`; `track`: the same keys over tracks.
    """
    window_probs = np.asarray(window_probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    metrics = classification_metrics(targets, window_probs.argmax(axis=1), classes)
    tracks = tracks_of(window_probs, targets, clip_ids, method)
    track = classification_metrics(tracks.targets, tracks.predicted, classes)
    metrics.update(
        n_windows=len(targets),
        n_tracks=len(tracks.ids),
        aggregate=method,
        track_accuracy=track["accuracy"],
        track_macro_f1=track["macro_f1"],
        track=track,
    )
    return metrics, tracks


def _probs(values: np.ndarray) -> list[str]:
    return [f"{v:.6f}" for v in values]


def write_window_predictions(path: Path, rows: list, window_probs: np.ndarray, classes: list[str]) -> Path:
    """One CSV row per window (manifest rows `rows`, in order): image, clip, source, start, truth, prediction,
    probabilities (the columns `html_report` reads)."""
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
