"""Prediction CSVs, a run folder's data: one writer for every task's files, their task columns laid out by the
task's layout (`layout_of(task)`, found by the task's type as `report.views.registry.views_of` finds its views).

A run folder's window file (`valid_predictions.csv`, `test_predictions.csv`: `WINDOW_IDS`) and track file
(`track_predictions.csv`, `test_track_predictions.csv`: `TRACK_IDS`), the classic baseline's (the same files) and
`evaluate`'s predictions.csv (`EVALUATION_IDS`, one row per track) hold the ids, then the task's columns
(`PredictionLayout.prediction_columns` / `evaluation_columns`): a classifier's true and predicted class and
`prob_<class>`; a regression's `true_<target>` and `pred_<target>`; a multilabel's true and predicted moods
(`;`-separated) and `prob_<mood>`. Cross-validation pools its folds' files into `oof_predictions.csv` and
`oof_track_predictions.csv` with the same writer; `scoring.predictions` reads them back.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._plumbing.files import atomic_path
from ..tasks.base import Task, registered_for
from ..tasks.classification import Classification
from ..tasks.multilabel import Multilabel
from ..tasks.regression import Regression
from .layout import prediction_files

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from ..data.labelfiles import ClipLabel
    from ..scoring.scores import Tracks, ValueTracks

__all__ = ["write_predictions", "write_split_predictions", "write_evaluation_predictions", "PredictionLayout",
           "layout_of", "register_layout"]  # fmt: skip

WINDOW_IDS = ("image", "clip_id", "source", "segment_start")
TRACK_IDS = ("clip_id", "source", "windows")
EVALUATION_IDS = ("file", "clip_id", "group")


class PredictionLayout:
    """The task columns of one task object's (`self.task`) prediction CSVs and baseline.csv; a subclass per task
    fills in `prediction_cells` and changes what its files lay out otherwise."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def __repr__(self) -> str:
        return f"<prediction layout of {self.task.name}>"

    def prediction_columns(self, names: list[str]) -> list[str]:
        """A prediction CSV's task columns after its ids (window and track files of a run): here the true and the
        predicted label, then the task's output columns (`Task.columns`)."""
        return ["true", "predicted", *self.task.columns(names)]

    def prediction_cells(self, names: list[str], truth: np.ndarray, outputs: np.ndarray, chosen: int | None) -> list:
        """One row's cells under `prediction_columns`: `truth` as `Task.split_truth` gives it, the row's outputs and,
        where an aggregation chose a class, its index."""
        raise NotImplementedError

    def evaluation_columns(self, names: list[str]) -> list[str]:
        """The task columns of `evaluate`'s predictions.csv after file, clip_id and group: here the window count,
        then the run's `prediction_columns`."""
        return ["windows", *self.prediction_columns(names)]

    def evaluation_cells(
        self, names: list[str], truth: np.ndarray, outputs: np.ndarray, chosen: int | None, windows: int
    ) -> list:
        """One track's cells under `evaluation_columns` (`windows`: its window count)."""
        return [windows, *self.prediction_cells(names, truth, outputs, chosen)]

    def track_outputs(self, tracks: Tracks | ValueTracks) -> tuple[np.ndarray, list[int | None]]:
        """Each track's outputs as its prediction row shows them, and the class an aggregation chose (None: none
        chosen): here the tracks' mean outputs."""
        return tracks.predicted, [None] * len(tracks.ids)

    def baseline_windows(self) -> list[str]:
        """baseline.csv's columns of the validation windows: seconds, then the task's scores."""
        return ["seconds", *self.task.facts.scores]


class ClassificationLayout(PredictionLayout):
    def prediction_cells(self, names: list[str], truth: np.ndarray, outputs: np.ndarray, chosen: int | None) -> list:
        """The true class, the class chosen (default: the most probable) and every class's probability."""
        best = int(outputs.argmax()) if chosen is None else int(chosen)
        return [names[int(truth)], names[best], *decimals(outputs)]

    def evaluation_columns(self, names: list[str]) -> list[str]:
        """The true and the predicted class, whether they match, the window count and `prob_<class>`."""
        return ["true", "predicted", "correct", "windows", *self.task.columns(names)]

    def evaluation_cells(
        self, names: list[str], truth: np.ndarray, outputs: np.ndarray, chosen: int | None, windows: int
    ) -> list:
        true, predicted, *probs = self.prediction_cells(names, truth, outputs, chosen)
        return [true, predicted, int(predicted == true), windows, *probs]

    def track_outputs(self, tracks: Tracks) -> tuple[np.ndarray, list[int | None]]:
        """The tracks' class probabilities and the class each aggregation chose."""
        return tracks.probs, list(tracks.predicted)

    def baseline_windows(self) -> list[str]:
        """The task's scores, then seconds (0.1's order, as results.csv has them)."""
        return [*self.task.facts.scores, "seconds"]


class RegressionLayout(PredictionLayout):
    def prediction_columns(self, names: list[str]) -> list[str]:
        """`true_<target>` and `pred_<target>` per target."""
        return [f"{kind}_{name}" for name in names for kind in ("true", "pred")]

    def prediction_cells(self, names: list[str], truth: np.ndarray, outputs: np.ndarray, chosen: int | None) -> list:
        return decimals([value for pair in zip(truth, outputs, strict=True) for value in pair])


class MultilabelLayout(PredictionLayout):
    def prediction_cells(self, names: list[str], truth: np.ndarray, outputs: np.ndarray, chosen: int | None) -> list:
        """The true moods and those at or above the decision (each `;`-separated), and each mood's probability."""
        true = ";".join(mood for mood, flag in zip(names, truth) if flag)
        return [true, self.task.describe(names, outputs), *decimals(outputs)]


LAYOUTS: dict[type[Task], type[PredictionLayout]] = {
    Classification: ClassificationLayout,
    Regression: RegressionLayout,
    Multilabel: MultilabelLayout,
}


def register_layout(task_type: type[Task], layout: type[PredictionLayout]) -> None:
    """Lay out the prediction files of `task_type`'s tasks (and its subclasses without one of their own) with
    `layout`."""
    LAYOUTS[task_type] = layout


def layout_of(task: Task) -> PredictionLayout:
    """The prediction layout of `task`: the one registered for its class or the nearest of its bases."""
    return registered_for(LAYOUTS, task, "prediction layout", "one with runs.predictions.register_layout")(task)


def decimals(values: np.ndarray) -> list[str]:
    """Probabilities or values as prediction CSVs write them: 6 decimals."""
    return [f"{value:.6f}" for value in values]


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
    layout = layout_of(task)
    columns = layout.prediction_columns(names)
    windows, track_file = prediction_files(folder, prefix)
    truth = task.split_truth(rows, names)
    write_predictions(windows, [*WINDOW_IDS, *columns], (
        [row.image, row.clip_id, row.source, f"{row.segment_start:.3f}", *layout.prediction_cells(names, t, o, None)]
        for row, t, o in zip(rows, truth, outputs, strict=True)
    ))  # fmt: skip
    shown, chosen = layout.track_outputs(tracks)
    write_predictions(track_file, [*TRACK_IDS, *columns], (
        [clip, rows[indices[0]].source, len(indices), *layout.prediction_cells(names, t, o, c)]
        for clip, indices, t, o, c in zip(tracks.ids, tracks.windows, tracks.targets, shown, chosen, strict=True)
    ))  # fmt: skip
    return windows, track_file


def write_evaluation_predictions(
    path: Path, task: Task, names: list[str], tracks: Tracks | ValueTracks, truth: dict[str, ClipLabel],
    ids: dict[str, str], windows: dict[str, int],
) -> Path:  # fmt: skip
    """`evaluate`'s predictions.csv: one row per scored track (its file, clip id and group from `ids` and `truth`,
    its window count from `windows`), then the task's `evaluation_columns`."""
    layout = layout_of(task)
    shown, chosen = layout.track_outputs(tracks)
    return write_predictions(path, [*EVALUATION_IDS, *layout.evaluation_columns(names)], (
        [file, ids[file], truth[file].group or "", *layout.evaluation_cells(names, t, o, c, windows[file])]
        for file, t, o, c in zip(tracks.ids, tracks.targets, shown, chosen, strict=True)
    ))  # fmt: skip
