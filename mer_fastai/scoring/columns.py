"""A results table's score columns, as results.csv and baseline.csv hold them: the identity of a row, the score
sets and their column prefixes, a score as a cell, and the atomic CSV writer.

The scoring side owns the scores' format; `report.results` reads and shows the tables, `evaluation.baseline`
and `experiments.executors` write their rows with it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from .._plumbing.files import atomic_path

__all__ = ["IDENTITY_COLUMNS", "SCORE_SETS", "SD_SUFFIX", "SPREAD_SETS", "csv_score", "score_columns", "write_csv_rows"]

IDENTITY_COLUMNS = ["experiment", "dataset", "feature", "arch", "mode", "weights", "augmentation", "epochs", "lr"]
SD_SUFFIX = "_sd"
# The score sets a row can hold (prefix of each score's column) and what they are, in table order.
SCORE_SETS = {
    "": "validation windows",
    "track_": "validation tracks",
    "test_": "test windows",
    "test_track_": "test tracks",
}
SPREAD_SETS = ("", "track_")  # cross-validated cells (recipe `folds`): the sd over folds of these, in `<score>_sd`


def score_columns(
    metrics: dict, scores: Iterable[str], prefixes: Iterable[str] = ("track_", "test_", "test_track_")
) -> dict:
    """The score columns of a run's metrics for the score sets `prefixes` (default: validation tracks, test
    windows and test tracks; "" adds validation windows): the task's `scores`, empty strings where undefined."""
    test = metrics.get("test") or {}
    blocks = {"": metrics, "track_": metrics.get("track") or {}, "test_": test, "test_track_": test.get("track") or {}}
    keys = list(scores)
    return {prefix + key: csv_score(blocks[prefix].get(key)) for prefix in prefixes for key in keys}


def csv_score(value: float | None) -> float | str:
    """A score as results.csv holds it: 4 decimals, or empty where undefined."""
    return "" if value is None else round(value, 4)


def write_csv_rows(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """A CSV of `rows` (keys outside `columns` ignored), replaced atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
