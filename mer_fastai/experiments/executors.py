"""A recipe grid's unit of work (`Cell`) and how cells run: one after another here (`execute_local`), or
as Ray tasks (`ray_executor.execute_ray`, which reuses `run_cell` and `error_message` from here)."""

from __future__ import annotations

import hashlib
import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from .._plumbing.progress import console
from ..api.training import run_cv, train
from ..data.dataset import read_info
from ..errors import MerError
from ..evaluation.oof import CVResult
from ..report.results import row_task
from ..runs.layout import CV_FILE, ENSEMBLE_FILE, METRICS_FILE, model_file_path, read_metrics
from ..scoring.columns import SCORE_SETS, SD_SUFFIX, SPREAD_SETS, csv_score, score_columns
from ..training.config import TrainConfig

OnResult = Callable[["Cell", dict | None, str | None], None]  # (cell, results row or None, error or None)


@dataclass
class Cell:
    """One training of the grid: everything needed to run it anywhere (plain data, picklable)."""

    experiment: str
    stage: str
    dataset: str
    feature: str
    arch: str
    mode: str
    augmentation: str
    data_dir: str
    run_dir: str
    config: TrainConfig
    weights_label: str
    # folds set: the cell is a K-fold cross-validation (`evaluation.cv.run_cv`), repeated `repeats` times
    folds: int | None = None
    repeats: int = 1

    @property
    def result_files(self) -> tuple[str, ...]:
        """The files whose presence in `run_dir` marks the cell finished: a cross-validation's cv.json and fold
        ensemble, a training's metrics.json."""
        return (CV_FILE, ENSEMBLE_FILE) if self.folds else (METRICS_FILE,)

    @property
    def id(self) -> str:
        parts = (self.experiment, self.stage, self.dataset, self.feature, self.arch, self.mode, self.augmentation)
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))

    @property
    def folder_name(self) -> str:
        """The run folder's name: the id, plus `-cv<K>[x<R>]` for a cross-validation (another K: another folder)."""
        if not self.folds:
            return self.id
        return f"{self.id}-cv{self.folds}" + (f"x{self.repeats}" if self.repeats > 1 else "")

    def fingerprint(self) -> str:
        """Changes whenever a setting of the cell or its data changes."""
        data = read_info(self.data_dir).settings
        start = model_file_path(self.config.weights)
        start_version = start.stat().st_mtime if start.exists() else None  # Experiment B: stage-1 model changed?
        body = {"config": self.config.fingerprint_settings(), "data": data, "start": start_version}
        if self.folds:  # only then, so that the cells of grids without folds keep their fingerprints
            body["cv"] = {"folds": self.folds, "repeats": self.repeats}
        blob = json.dumps(body, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cell_row(cell: Cell, metrics: dict) -> dict:
    """The results.csv row of a finished cell: its task's scores of every score set it has."""
    task = row_task(metrics)
    return {
        **_identity(cell),
        "epochs": metrics["epochs"],
        "lr": f"{metrics['lr']:.3g}",
        "seconds": metrics["seconds"],
        "task": task.name,
        **score_columns(metrics, task.facts.scores, SCORE_SETS),
    }


def cv_row(cell: Cell, result: CVResult) -> dict:
    """The results.csv row of a cross-validated cell: each of its task's window and track scores' mean over
    the folds, its sd in `<score>_sd` (no test scores: the folds never see the test split)."""
    runs = [read_metrics(run_dir) for run_dir in result.fold_dirs]
    low, high = (f"{value:.3g}" for value in (min(r["lr"] for r in runs), max(r["lr"] for r in runs)))
    row = {
        **_identity(cell),
        "epochs": runs[0]["epochs"],
        "lr": low if low == high else f"{low}–{high}",  # lr: auto finds one per fold
        "seconds": round(sum(run["seconds"] for run in runs), 2),  # the cell's whole training time
        "folds": len(result.fold_dirs),
        "task": result.task.name,
    }
    for score in (prefix + key for prefix in SPREAD_SETS for key in result.task.facts.scores):
        values = result.summary[score]
        row[score], row[f"{score}{SD_SUFFIX}"] = csv_score(values["mean"]), csv_score(values["sd"])
    return row


def _identity(cell: Cell) -> dict:
    """The columns naming a cell in results.csv."""
    return {
        "experiment": cell.experiment,
        "dataset": cell.dataset,
        "feature": cell.feature,
        "arch": cell.arch,
        "mode": cell.mode,
        "weights": cell.weights_label,
        "augmentation": cell.augmentation,
        "stage": cell.stage,
        "run_dir": cell.run_dir,
    }


def run_cell(cell: Cell) -> dict:
    """Train (or cross-validate) one cell and return its results row (runs in this process or on a remote worker).

    A cross-validated cell also writes its fold models as one ensemble (`ensemble.safetensors`), as `cv` does."""
    if cell.folds:
        folds = run_cv(cell.data_dir, cell.config, cell.run_dir, cell.folds, cell.repeats, report=False, show=False)
        return cv_row(cell, folds)
    result = train(cell.data_dir, cell.config, cell.run_dir, show=False)
    return cell_row(cell, result.metrics)


def execute_local(cells: list[Cell], on_result: OnResult) -> None:
    """Run cells one after another in this process."""
    for index, cell in enumerate(cells, 1):
        console.rule(
            f"[bold]cell {index}/{len(cells)}: {cell.stage} · {cell.feature} · {cell.arch} · {cell.mode}"
            + (f" · +{cell.augmentation}" if cell.augmentation != "none" else "")
        )
        try:
            on_result(cell, run_cell(cell), None)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failed cell must not stop the grid
            if not isinstance(exc, MerError):
                console.print(traceback.format_exc(limit=3), style="dim")
            on_result(cell, None, error_message(exc))


def error_message(exc: Exception) -> str:
    """One line for a failed cell: a MerError's own message, else the exception type and first line."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return message if isinstance(exc, MerError) else f"{type(exc).__name__}: {message}"
