"""`cv --refit`: one more model, trained on every cross-validated clip with the folds' settings and epoch count.

The refit's data set (`OUT/refit/data`) holds every clip of the data set's train and valid splits as training
clips and its test split, if any, as test clips; it has no validation split, so its run validates nothing and
writes no validation scores (metrics.json's `refit` says so): its expected performance is the cross-validation's
out-of-fold scores. Each fold trains exactly `--epochs` epochs (cv refuses `--patience` and keeps the last
epoch), and so does the refit. A test split is scored once with the refit model, as `train` scores one. A
finished refit whose settings match is skipped on rerun; any other is trained again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .._plumbing.files import write_json
from .._plumbing.progress import console
from ..data.dataset import DatasetInfo, ManifestRow
from ..runs.layout import FOLD_DATA, MODEL_FILE, REFIT_DIR, REFIT_FILE, is_finished, read_json_or_empty, read_metrics
from ..tasks.base import Task
from ..tasks.opened import Dataset
from ..training.config import TrainSettings
from ..training.fit import Pages, train
from ..training.items import REFIT, check_dataset
from .folds import CV_SPLITS, linked_data

EXPECTED = "none held out: the cross-validation's out-of-fold (pooled) scores are its expected performance"


@dataclass
class Refit:
    """A finished refit: its run folder, epochs, clips, whether this call trained it, and its test scores."""

    run_dir: Path
    epochs: int
    clips: int
    ran: bool
    test: dict | None
    dataset: Dataset | None = None  # the refit's data set as this call wrote it (None: kept from an earlier call)

    @property
    def model(self) -> Path:
        return self.run_dir / MODEL_FILE

    def record(self, out: Path) -> dict:
        """cv.json's `refit` entry: where the model is, what it was trained on, and which scores describe it."""
        return {
            "folder": self.run_dir.relative_to(out).as_posix(),
            "model": self.model.relative_to(out).as_posix(),
            "epochs": self.epochs,
            "clips": self.clips,
            "validation_scores": EXPECTED,
            "test": self.test,
        }


def refit_fingerprint(data_dir: Path, info: DatasetInfo, settings: TrainSettings, clips: list[str]) -> str:
    """What the refit depends on: the data set, every training setting and the clips it trains on."""
    body = {
        "data_dir": str(data_dir.resolve()),
        "dataset": info.settings,
        "config": settings.config.fingerprint_settings(),
        "refit": sorted(clips),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def refit_model(dataset: Dataset, settings: TrainSettings, out: Path, show: bool, pages: Pages | None = None) -> Refit:
    """Train (or, when finished with the same settings, keep) the refit model in `out/refit` (`pages`: the
    caller's, drawn once it is trained)."""
    data_dir, info, rows = dataset.path, dataset.info, list(check_dataset(dataset).rows)
    trained = [row for row in rows if row.split in CV_SPLITS]
    clips = sorted({row.clip_id for row in trained})
    run_dir = out / REFIT_DIR
    fingerprint = refit_fingerprint(data_dir, info, settings, clips)
    epochs = settings.config.epochs
    done = read_json_or_empty(run_dir / REFIT_FILE).get("fingerprint") == fingerprint and is_finished(run_dir)
    refit_data = None
    if not done:
        if show:
            console.print(f"refit: one model on all {len(clips)} cross-validated clips, {epochs} epochs")
        (run_dir / REFIT_FILE).unlink(missing_ok=True)
        refit_data = build_refit_data(dataset, rows, run_dir / FOLD_DATA)
        train(refit_data, settings, run_dir, pages)
        write_json(run_dir / REFIT_FILE, {"fingerprint": fingerprint, "epochs": epochs, "clips": len(clips)})
    return Refit(run_dir, epochs, len(clips), not done, read_metrics(run_dir).get("test"), refit_data)


def build_refit_data(dataset: Dataset, rows: list[ManifestRow], dest: Path) -> Dataset:
    """The refit's data set: the train and valid clips all training, a test split kept as the test split."""
    placed = [(row, "test" if row.split not in CV_SPLITS else "train") for row in rows]
    trained = len({row.clip_id for row, split in placed if split == "train"})
    return linked_data(dataset, placed, dest, {**dataset.info.settings, REFIT: {"clips": trained}})


def refit_lines(refit: Refit, task: Task) -> list[str]:
    """cv's terminal lines about the refit model: where it is, and which scores describe it."""
    lines = [
        f"refit model: {refit.model} — trained on all {refit.clips} cross-validated clips for {refit.epochs} epochs; "
        f"validation scores: {EXPECTED}"
    ]
    if refit.test:
        keys = task.facts.scores
        shown = [f"{key} {refit.test[key]:.4f}" for key in keys if refit.test.get(key) is not None]
        shown += [f"track_{k} {v:.4f}" for k in keys if (v := (refit.test.get("track") or {}).get(k)) is not None]
        lines.append(f"refit model on the held-out test split: {', '.join(shown)}")
    return lines
