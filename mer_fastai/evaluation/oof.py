"""The out-of-fold predictions of a cross-validation: the folds' prediction files pooled, checked and scored.

Each fold's `valid_predictions.csv` / `track_predictions.csv` are pooled into `oof_predictions.csv` and
`oof_track_predictions.csv` (every clip predicted exactly once out of fold per repeat), and scored per fold,
per repeat and all together by the functions training scores the task with (`Task.score_rows`). The task's
pooled plots are the caller's pages, drawn from `CVResult.plots` (`api.training.run_cv`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.dataset import ManifestRow
from ..errors import MerError
from ..runs.layout import (
    OOF_PREDICTIONS,
    OOF_TRACKS,
    TRACK_PREDICTIONS,
    VALID_PREDICTIONS,
    fold_dir,
)
from ..runs.predictions import write_predictions
from ..scoring.scores import ValueTracks
from ..tasks.base import Task
from ..tasks.opened import Dataset
from ..tasks.registry import DEFAULT
from .folds import Fold

if TYPE_CHECKING:
    from .refit import Refit


@dataclass
class PooledPlots:
    """What a cross-validation's pooled plots show: the task's metrics of all out-of-fold windows and tracks (a
    regression's and a multilabel's track values), the outputs' scales and the plots' title."""

    window: dict
    track: dict
    values: ValueTracks | None
    scale: dict
    title: str


@dataclass
class CVResult:
    """A finished cross-validation: its folder, fold run folders, summary, pooled scores and ensemble."""

    out: Path
    fold_dirs: list[Path]
    summary: dict[str, dict]  # score → mean, sd, values (one per fold), ci95
    pooled: dict[str, float | None]  # score of all out-of-fold predictions together (mean over repeats)
    per_fold: list[dict[str, float | None]]
    per_repeat: list[dict[str, float | None]]  # pooled scores of each repeat
    classes: list[str]  # the classes, or a regression's targets, or the moods
    confusion: dict[str, list[list[int]]]  # classification: "windows"/"tracks" → pooled confusion matrix (rows: true)
    task: Task = DEFAULT  # the data set's (equal to its name)
    pooled_metrics: dict = field(default_factory=dict)  # regression/multilabel: the task's metrics of all rows
    # the data sets this call opened or wrote (the cross-validated one, the folds' and the refit's it trained), which
    # its report describes without reading them again (folds finished by an earlier call: read there)
    opened: list[Dataset] = field(default_factory=list)
    ensemble: Path | None = None
    refit: Refit | None = None  # with --refit: the model trained on every clip
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plots: PooledPlots | None = None  # what the caller's pooled plots show


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise MerError(
            f"{path}: not found; the fold's run was made by a mer-fastai that did not write it: delete "
            f"{path.parent} and rerun the same command"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _names(task: Task, columns: list[str], path: Path) -> list[str]:
    """The classes or moods (`prob_<name>` columns), or a regression's targets (`pred_<name>`), in order."""
    prefix = f"{task.facts.column_prefix}_"
    names = [name.removeprefix(prefix) for name in columns if name.startswith(prefix)]
    if not names:
        raise MerError(f"{path}: has no {prefix}<name> columns; delete {path.parent} and rerun the same command")
    return names


@dataclass
class _Scored:
    """The task's metrics of some out-of-fold prediction rows: windows, tracks and (regression, multilabel)
    the tracks' values."""

    window: dict
    track: dict
    values: ValueTracks | None = None

    @property
    def confusion(self) -> dict[str, list[list[int]]]:
        """The confusion matrices of windows and tracks, where the task's metrics have them (a classifier's)."""
        if "confusion_matrix" not in self.window:
            return {}
        return {"windows": self.window["confusion_matrix"], "tracks": self.track["confusion_matrix"]}


def _score_rows(task: Task, names: list[str], windows: list[dict], tracks: list[dict]) -> _Scored:
    """Score prediction rows with the function training scores the task with (`Task.score_rows`; a clip of
    several repeats counts once per repeat)."""
    clips = [f"{row['repeat']}/{row['clip_id']}" for row in windows]
    return _Scored(*task.score_rows(names, windows, tracks, clips))


def _fold_scores(task: Task, names: list[str], scored: _Scored) -> dict[str, float | None]:
    """The scores cv.json summarises: the task's scores (`TaskFacts.scores`) of windows, then of tracks (`track_`);
    a regression's also per target (`ccc_valence`, `track_rmse_energy`, ...)."""
    values: dict[str, float | None] = {}
    for prefix, block in (("", scored.window), ("track_", scored.track)):
        values.update({prefix + key: block[key] for key in task.facts.scores})
        values.update(task.output_scores(block, names, prefix))
    return values


def pool_folds(out: Path, plan: list[Fold], rows: list[ManifestRow], dataset: Dataset) -> CVResult:
    """Per-fold scores, the out-of-fold prediction files, pooled scores and what the task's pooled plots show."""
    info, task = dataset.info, dataset.task
    windows, tracks = [], []
    columns: dict[str, list[str]] = {}
    for fold in plan:
        run_dir = fold_dir(out, fold.index)
        for name, pooled in ((VALID_PREDICTIONS, windows), (TRACK_PREDICTIONS, tracks)):
            names, found = _read_csv(run_dir / name)
            if columns.setdefault(name, names) != names:
                raise MerError(f"{run_dir / name}: its columns differ from fold 0's; delete {run_dir} and rerun")
            pooled += [{**row, "repeat": str(fold.repeat), "fold": fold.name} for row in found]
    originals = {f"valid/{row.label}/{Path(row.image).name}": row.image for row in rows}
    for row in windows:  # name each image as the cross-validated data set does (the report shows it from there)
        row["image"] = originals.get(row["image"], row["image"])
    names = _names(task, columns[VALID_PREDICTIONS], fold_dir(out, plan[0].index) / VALID_PREDICTIONS)
    _check_coverage(plan, rows, windows, tracks)
    _write_oof(out / OOF_PREDICTIONS, columns[VALID_PREDICTIONS], windows)
    _write_oof(out / OOF_TRACKS, columns[TRACK_PREDICTIONS], tracks)

    def scores_of(key: str, value: str) -> dict[str, float | None]:
        subset = (_where(windows, key, value), _where(tracks, key, value))
        return _fold_scores(task, names, _score_rows(task, names, *subset))

    per_fold = [scores_of("fold", fold.name) for fold in plan]
    per_repeat = [scores_of("repeat", repeat) for repeat in sorted({str(fold.repeat) for fold in plan})]
    pooled = {name: describe([scores[name] for scores in per_repeat])["mean"] for name in per_fold[0]}
    summary = {name: describe([scores[name] for scores in per_fold]) for name in per_fold[0]}
    scored = _score_rows(task, names, windows, tracks)
    plots = PooledPlots(scored.window, scored.track, scored.values, info.scale, f"{len(plan)} folds, out of fold")
    return CVResult(
        out,
        [fold_dir(out, fold.index) for fold in plan],
        summary,
        pooled,
        per_fold,
        per_repeat,
        names,
        scored.confusion,
        task,
        {} if scored.confusion else scored.window,
        plots=plots,
    )


def _where(rows: list[dict], key: str, value: str) -> list[dict]:
    return [row for row in rows if row[key] == value]


def _check_coverage(plan: list[Fold], rows: list[ManifestRow], windows: list[dict], tracks: list[dict]) -> None:
    """Every clip (and window) predicted exactly once out of fold per repeat, and only by the fold that held it out."""
    clips = sorted({row.clip_id for row in rows})
    by_name = {fold.name: fold for fold in plan}
    for repeat in sorted({fold.repeat for fold in plan}):
        predicted = [r["clip_id"] for r in tracks if r["repeat"] == str(repeat)]
        images = [r["image"] for r in windows if r["repeat"] == str(repeat)]
        wrong = [
            r["clip_id"]
            for r in tracks
            if r["repeat"] == str(repeat) and r["clip_id"] not in by_name[r["fold"]].valid_clips
        ]
        if sorted(predicted) != clips or len(images) != len(rows) or wrong:
            raise MerError(
                f"repeat {repeat}: the folds' predictions do not cover every clip exactly once ({len(predicted)} "
                f"track rows for {len(clips)} clips, {len(images)} window rows for {len(rows)} images); delete the "
                "fold folders and rerun"
            )


def _write_oof(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """The folds' prediction rows pooled, each with its repeat and fold, by the one prediction writer."""
    heads = [*columns, "repeat", "fold"]
    write_predictions(path, heads, ([row[head] for head in heads] for row in rows))


def describe(values: list[float | None]) -> dict:
    """mean, standard deviation (n−1), the values and a 95 % t-interval of the mean, over the values that are
    defined (a score undefined in a fold, e.g. Pearson r of constant predictions, is null and left out)."""
    from scipy import stats

    present = [float(v) for v in values if v is not None]
    n = len(present)
    shown = [None if v is None else float(v) for v in values]
    if not n:
        return {"mean": None, "sd": None, "values": shown, "ci95": [None, None]}
    mean = float(np.mean(present))
    sd = float(np.std(present, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "values": shown, "ci95": [mean - half, mean + half]}
