"""Window and track scores: the one place that turns window outputs into track labels and scores.

`train` (validation and test splits), `evaluate` and `predict` all aggregate a clip's windows with
`aggregate` and score with `score_windows` (a regression's values with `score_regression`, a multilabel's
mood probabilities with `score_multilabel`), so their numbers cannot disagree. The prediction files these
scores come with are `scoring.predictions`'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bounds import quote
from ..choices import AGGREGATES
from ..errors import MerError
from .metrics import classification_metrics

__all__ = ["aggregate", "score_regression", "score_multilabel"]


def check_aggregate(method: str) -> None:
    """A clear error for an unknown --aggregate."""
    if method not in AGGREGATES:
        raise MerError(f"unknown aggregation {quote(method)}; choose one of {', '.join(AGGREGATES)}")


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
            raise MerError(f"clip {quote(clip)}: its windows have different labels; prepare the data set again")
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


# Regression: one function per task. A track's prediction is the mean of its windows' predictions.

REGRESSION_SCORES = ("ccc", "pearson_r", "r2", "rmse", "mae")


def regression_metrics(predicted: np.ndarray, true: np.ndarray, targets: list[str]) -> dict:
    """Per target CCC, Pearson r, R², RMSE and MAE (`per_target`), and each score's mean over the targets.

    A score that is undefined (e.g. Pearson r of constant predictions, R² of a constant truth) is null.
    """
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    per_target = {name: _regression_scores(predicted[:, i], true[:, i]) for i, name in enumerate(targets)}
    means = {score: _mean([values[score] for values in per_target.values()]) for score in REGRESSION_SCORES}
    return {**means, "targets": list(targets), "per_target": per_target}


def _regression_scores(predicted: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    """The scores of one target's predictions."""
    error = predicted - true
    mean_p, mean_t = predicted.mean(), true.mean()
    var_p, var_t = predicted.var(), true.var()
    cov = float(np.mean((predicted - mean_p) * (true - mean_t)))
    denominator = var_p + var_t + (mean_p - mean_t) ** 2
    return {
        "ccc": 2 * cov / denominator if denominator > 0 else None,
        "pearson_r": cov / float(np.sqrt(var_p * var_t)) if var_p > 0 and var_t > 0 else None,
        "r2": 1 - float(np.mean(error**2)) / var_t if var_t > 0 else None,
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


@dataclass
class ValueTracks:
    """The tracks of a set of regression windows: ids, their windows, mean predictions and true values."""

    ids: list[str]
    windows: list[list[int]]
    predicted: np.ndarray  # (n_tracks, n_targets): the mean of the windows' predictions
    targets: np.ndarray  # (n_tracks, n_targets)


def value_tracks(predicted: np.ndarray, true: np.ndarray, clip_ids: list[str]) -> ValueTracks:
    """Group regression windows by clip; a clip whose windows disagree on the truth is refused."""
    where: dict[str, list[int]] = {}
    for i, clip in enumerate(clip_ids):
        where.setdefault(clip, []).append(i)
    for clip, indices in where.items():
        if not np.allclose(true[indices], true[indices[0]]):
            raise MerError(f"clip {quote(clip)}: its windows have different target values; prepare the data set again")
    return ValueTracks(
        list(where),
        list(where.values()),
        np.array([predicted[indices].mean(axis=0) for indices in where.values()]),
        np.array([true[indices[0]] for indices in where.values()]),
    )


def score_regression(
    predicted: np.ndarray, true: np.ndarray, clip_ids: list[str], targets: list[str]
) -> tuple[dict, ValueTracks]:
    """Window scores (top level, see `regression_metrics`) and track scores (`track` block, plus `track_ccc`);
    `n_windows`, `n_tracks` and `aggregate` ("mean") as in `score_windows`."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    metrics = regression_metrics(predicted, true, targets)
    tracks = value_tracks(predicted, true, clip_ids)
    track = regression_metrics(tracks.predicted, tracks.targets, targets)
    metrics.update(
        task="regression", n_windows=len(true), n_tracks=len(tracks.ids), aggregate="mean",
        track_ccc=track["ccc"], track=track,
    )  # fmt: skip
    return metrics, tracks


# Multilabel: a track's mood probabilities are the mean of its windows'; a mood is predicted at `threshold`.


def multilabel_metrics(probs: np.ndarray, true: np.ndarray, moods: list[str], threshold: float) -> dict:
    """Micro and macro F1 and mean average precision (`map`, over the moods that occur) at `threshold`, and
    per mood precision, recall, F1, AP (null for a mood that never occurs here) and support."""
    from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support

    true = np.asarray(true).astype(int).reshape(len(true), -1)
    probs = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    predicted = (probs >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(true, predicted, average=None, zero_division=0)
    ap = [
        float(average_precision_score(true[:, i], probs[:, i])) if true[:, i].any() else None for i in range(len(moods))
    ]
    return {
        "micro_f1": float(f1_score(true, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(true, predicted, average="macro", zero_division=0)),
        "map": _mean(ap),
        "threshold": threshold,
        "moods": list(moods),
        "per_label": {
            mood: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "ap": ap[i],
                "support": int(support[i]),
            }
            for i, mood in enumerate(moods)
        },  # fmt: skip
    }


def score_multilabel(
    probs: np.ndarray, true: np.ndarray, clip_ids: list[str], moods: list[str], threshold: float
) -> tuple[dict, ValueTracks]:
    """Window scores (top level, see `multilabel_metrics`) and track scores (`track` block, plus
    `track_macro_f1`); `n_windows`, `n_tracks` and `aggregate` ("mean") as in `score_windows`."""
    probs = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    metrics = multilabel_metrics(probs, true, moods, threshold)
    tracks = value_tracks(probs, true, clip_ids)
    track = multilabel_metrics(tracks.predicted, tracks.targets, moods, threshold)
    metrics.update(
        task="multilabel", n_windows=len(true), n_tracks=len(tracks.ids), aggregate="mean",
        track_macro_f1=track["macro_f1"], track=track,
    )  # fmt: skip
    return metrics, tracks
