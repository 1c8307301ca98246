"""Prediction CSV files read back for scoring (cross-validation's pooled folds, `Task.score_rows`).

A run folder's `valid_predictions.csv` / `track_predictions.csv` and the test split's (`runs.layout.prediction_files`)
hold one row per window / track: ids, then a classifier's truth, prediction and `prob_<class>` columns; a
regression's `true_<target>` and `pred_<target>`; a multilabel's true and predicted moods (`;`-separated) and
`prob_<mood>`. One writer writes them all: `runs.predictions`.
"""

from __future__ import annotations

import numpy as np

from .metrics import classification_metrics


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
