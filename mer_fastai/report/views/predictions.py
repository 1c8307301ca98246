"""Prediction CSVs: one writer for every task's files, their task columns laid out by the task's views.

A run folder's window file (`valid_predictions.csv`, `test_predictions.csv`: `WINDOW_IDS`) and track file
(`track_predictions.csv`, `test_track_predictions.csv`: `TRACK_IDS`), the classic baseline's (the same files) and
`evaluate`'s predictions.csv (`EVALUATION_IDS`, one row per track) hold the ids, then the task's columns
(`TaskViews.prediction_columns` / `evaluation_columns`): a classifier's true and predicted class and
`prob_<class>`; a regression's `true_<target>` and `pred_<target>`; a multilabel's true and predicted moods
(`;`-separated) and `prob_<mood>`. Cross-validation pools its folds' files into `oof_predictions.csv` and
`oof_track_predictions.csv` with the same writer; `scoring.predictions` reads them back.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..._plumbing.files import atomic_path
from ...runs.layout import prediction_files
from .registry import views_of

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from ...data.labelfiles import ClipLabel
    from ...scoring.scores import Tracks, ValueTracks
    from ...tasks.base import Task

__all__ = ["write_predictions", "write_split_predictions", "write_evaluation_predictions"]

WINDOW_IDS = ("image", "clip_id", "source", "segment_start")
TRACK_IDS = ("clip_id", "source", "windows")
EVALUATION_IDS = ("file", "clip_id", "group")


def write_predictions(path: Path, columns: list[str], rows: Iterable[list]) -> Path:
    """The one writer of prediction CSVs: `columns`, then `rows`, written atomically (nothing half-written)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_split_predictions(
    folder: Path, prefix: str, task: Task, rows: list, outputs: np.ndarray, tracks: Tracks | ValueTracks,
    names: list[str],
) -> tuple[Path, Path]:  # fmt: skip
    """A split's window and track prediction files as a training run (or the baseline) writes them (`prefix` ""
    for the validation split or `runs.layout.TEST_PREFIX`): manifest `rows` and their `outputs` in order, the
    split's `tracks`; `names` the classes, targets or moods."""
    views = views_of(task)
    columns = views.prediction_columns(names)
    windows, track_file = prediction_files(folder, prefix)
    truth = task.split_truth(rows, names)
    write_predictions(windows, [*WINDOW_IDS, *columns], (
        [row.image, row.clip_id, row.source, f"{row.segment_start:.3f}", *views.prediction_cells(names, t, o, None)]
        for row, t, o in zip(rows, truth, outputs, strict=True)
    ))  # fmt: skip
    shown, chosen = views.track_outputs(tracks)
    write_predictions(track_file, [*TRACK_IDS, *columns], (
        [clip, rows[indices[0]].source, len(indices), *views.prediction_cells(names, t, o, c)]
        for clip, indices, t, o, c in zip(tracks.ids, tracks.windows, tracks.targets, shown, chosen, strict=True)
    ))  # fmt: skip
    return windows, track_file


def write_evaluation_predictions(
    path: Path, task: Task, names: list[str], tracks: Tracks | ValueTracks, truth: dict[str, ClipLabel],
    ids: dict[str, str], windows: dict[str, int],
) -> Path:  # fmt: skip
    """`evaluate`'s predictions.csv: one row per scored track (its file, clip id and group from `ids` and `truth`,
    its window count from `windows`), then the task's `evaluation_columns`."""
    views = views_of(task)
    shown, chosen = views.track_outputs(tracks)
    return write_predictions(path, [*EVALUATION_IDS, *views.evaluation_columns(names)], (
        [file, ids[file], truth[file].group or "", *views.evaluation_cells(names, t, o, c, windows[file])]
        for file, t, o, c in zip(tracks.ids, tracks.targets, shown, chosen, strict=True)
    ))  # fmt: skip
