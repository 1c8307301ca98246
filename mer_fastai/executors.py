"""A recipe grid's unit of work (`Cell`) and how cells run: one after another here (`execute_local`), or
as Ray tasks (`ray_executor.execute_ray`, which reuses `run_cell` and `error_message` from here)."""

from __future__ import annotations

import hashlib
import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .dataset import read_info
from .errors import MerError
from .modelfile import MODEL_FILE
from .progress import console
from .tracking import TRACKING_FIELDS
from .train import train

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

    @property
    def id(self) -> str:
        parts = (self.experiment, self.stage, self.dataset, self.feature, self.arch, self.mode, self.augmentation)
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))

    def fingerprint(self) -> str:
        """Changes whenever a setting of the cell or its data changes."""
        data = read_info(self.data_dir).settings
        start = Path(self.config.weights) / MODEL_FILE
        start_version = start.stat().st_mtime if start.exists() else None  # Experiment B: stage-1 model changed?
        config = {k: v for k, v in self.config.to_dict().items() if k not in TRACKING_FIELDS}  # tracking reruns nothing
        blob = json.dumps({"config": config, "data": data, "start": start_version}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cell_row(cell: Cell, metrics: dict) -> dict:
    """The results.csv row of a finished cell."""
    return {
        "experiment": cell.experiment,
        "dataset": cell.dataset,
        "feature": cell.feature,
        "arch": cell.arch,
        "mode": cell.mode,
        "weights": cell.weights_label,
        "augmentation": cell.augmentation,
        "epochs": metrics["epochs"],
        "lr": f"{metrics['lr']:.3g}",
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4),
        "seconds": metrics["seconds"],
        "stage": cell.stage,
        "run_dir": cell.run_dir,
        **score_columns(metrics),
    }


def score_columns(metrics: dict) -> dict:
    """The track and test score columns of a run's metrics (empty strings where the run has none)."""
    test = metrics.get("test") or {}
    values = {
        "track_accuracy": metrics.get("track_accuracy"),
        "track_macro_f1": metrics.get("track_macro_f1"),
        "test_accuracy": test.get("accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "test_track_accuracy": test.get("track_accuracy"),
        "test_track_macro_f1": test.get("track_macro_f1"),
    }
    return {name: "" if value is None else round(value, 4) for name, value in values.items()}


def run_cell(cell: Cell) -> dict:
    """Train one cell and return its results row (runs in this process or on a remote worker)."""
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
