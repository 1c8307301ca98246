"""`baseline`: hand-crafted audio features, or a frozen network's probed layer, and classic estimators on the data
set's own windows and split.

The features of every window (`baseline.featuresets`: hand-crafted, melodic, musicnn probes, or several of them
concatenated) are standardised on the training split and fed to an RBF SVM, k-NN, a random forest, extra trees
and a linear model (logistic regression, ridge) of the task's kind (`baseline.models`: classifiers, regressors of
the targets, or classifiers giving each mood a probability), evaluated on the validation split (and a held-out
test split, when the data set has one): the reference that the CNNs of the study are compared with. Windows and
tracks are scored exactly as a training run scores them (`Task.score`: a window's label is its most probable
class, a track's comes from its windows' `predict_proba` combined by `scoring.scores.aggregate`; a regression track's
prediction and a multilabel track's probabilities are its windows' mean, a mood predicted at the task's
decision as a CNN predicts it). Each estimator's folder also gets the prediction files of a training run
(`runs.predictions.write_split_predictions`: windows and tracks of validation and test)."""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.table import Table

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

from ..._plumbing.files import write_json
from ..._plumbing.locks import reads_dataset
from ..._plumbing.progress import console
from ...bounds import SEED, quote
from ...choices import CLASSIFIERS
from ...data.dataset import SPLITS, ManifestRow
from ...errors import MerError
from ...models.header import MODEL_FILE, model_writer
from ...runs.layout import (
    BASELINE_CSV,
    METRICS_FILE,
    MODEL_CHECKSUM,
    TEST_PREDICTIONS,
    TEST_PREFIX,
    TEST_TRACK_PREDICTIONS,
)
from ...runs.predictions import layout_of, write_split_predictions
from ...scoring.columns import IDENTITY_COLUMNS, SCORE_SETS, SD_SUFFIX, score_columns, write_csv_rows
from ...scoring.scores import check_aggregate
from ...tasks.base import Task
from ...tasks.opened import Dataset, as_dataset
from ...tasks.registry import TASKS
from .featuresets import DEFAULT_FEATURES, gather, parse_features, row_name
from .models import Estimator, estimator
from .savemodel import check_save_model, save_linear_model

__all__ = ["run_baseline"]

PREFIXES = (("valid", ""), ("test", TEST_PREFIX))  # the scored splits and the prefix of their prediction files


def baseline_columns(task: Task) -> list[str]:
    """baseline.csv's columns for a data set of `task`: identity, seconds and the task's scores of validation
    windows (the default task's file keeps 0.1's order: those scores, then seconds, as results.csv has them),
    then of validation tracks, test windows and test tracks."""
    return [*IDENTITY_COLUMNS, *layout_of(task).baseline_windows()] + [
        prefix + key for prefix in SCORE_SETS if prefix for key in task.facts.scores
    ]


@reads_dataset
def run_baseline(
    data_dir: str | Path | Dataset,
    out: str | Path,
    classifiers: list[str] | None = None,
    seed: int = 42,
    *,
    aggregate: str = "mean",
    workers: int | None = None,
    progress: bool = True,
    features: str = DEFAULT_FEATURES,
    layer: str = "penultimate",
    save_model: bool = False,
) -> list[dict]:
    """Fit each classifier on the training windows' `features` (a `--features` value; `layer`: the probed
    musicnn layer) of a data set (a `Dataset`, or its folder), score it on the validation (and test) windows and tracks.

    Writes `out/<row>/metrics.json` (laid out as a training run's: window scores, the `track` block, `valid`
    and `test`), the row's prediction files (those of a training run) and `out/baseline.csv`; returns the CSV
    rows of this run. A row is named by its classifier, followed by the feature label for any features but the
    hand-crafted ones (`linear-musicnn-msd.penultimate`). `save_model`: also `out/<row>/model.safetensors`, the
    fitted linear model as a model file (`baseline.savemodel`; only `linear`, on features a model file computes).
    """
    check_aggregate(aggregate)
    SEED.check(seed, "--seed")  # the estimators' random_state reads no other
    chosen_features = parse_features(features, layer)
    out = Path(out)
    chosen = list(dict.fromkeys(classifiers or CLASSIFIERS))
    unknown = [name for name in chosen if name not in CLASSIFIERS]
    if unknown:
        raise MerError(f"unknown --classifier {quote(unknown[0])}; choose from {', '.join(CLASSIFIERS)}")
    if save_model:
        check_save_model(chosen, chosen_features, [out])
    dataset = as_dataset(data_dir)
    data_dir, info, task = dataset.path, dataset.info, dataset.task
    kind = estimator(task)
    started = time.time()
    found, skipped = gather(dataset, chosen_features, out, workers, progress)
    feature_seconds = round(time.time() - started, 2)
    for item in skipped:
        console.print(f"[yellow]skipped[/] {item['reason']}", soft_wrap=True, highlight=False)
    width = len(chosen_features.names)
    splits = _split(list(dataset.rows), found, info.classes, width, not kind.learns_classes)
    (x_train, y_train, _), (_, y_valid, _) = splits["train"], splits["valid"]
    if len(y_valid) == 0:
        raise MerError(f"{data_dir}: no validation window has features; prepare with a larger --valid-pct")
    if kind.learns_classes and len(set(y_train.tolist())) < 2:
        raise MerError(f"{data_dir}: the training windows hold fewer than two classes; check the data set")
    dataset_name = data_dir.resolve().name
    results = []
    for classifier in chosen:
        name = row_name(classifier, chosen_features)
        begun, folder = time.time(), out / name
        folder.mkdir(parents=True, exist_ok=True)
        if not save_model:
            _drop_stale_model(folder)
        with warnings.catch_warnings():  # libsvm's probabilities, kept on purpose (see `make_classifier`)
            warnings.filterwarnings("ignore", "The `probability` parameter was deprecated", FutureWarning)
            model = kind.make(classifier, seed, len(y_train), workers).fit(x_train, y_train)
        scores = {split: _evaluate(model, splits[split], dataset, kind, aggregate, folder, prefix)
                  for split, prefix in PREFIXES}  # fmt: skip
        seconds = round(time.time() - begun, 3)
        metrics = {**scores["valid"], "valid": scores["valid"], "test": scores["test"]}
        if save_model:  # before metrics.json: a row reported done has its model file
            checks = [splits[split][0] for split in ("train", "valid")]
            metrics[MODEL_CHECKSUM] = save_linear_model(
                model, kind, dataset, chosen_features, scores["valid"], checks, folder
            )
        metrics.update(
            experiment="baseline",
            dataset=dataset_name,
            arch=name,
            mode="features",
            feature=info.feature,
            seconds=seconds,
            feature_seconds=feature_seconds,
            features=chosen_features.names,
            feature_sets=chosen_features.label,
            n_train=len(y_train),
            n_valid=len(y_valid),
            n_test=len(splits["test"][1]),
            seed=seed,
            skipped=skipped,
        )
        write_json(folder / METRICS_FILE, metrics)
        identity = {"experiment": "baseline", "dataset": dataset_name, "feature": info.feature, "arch": name,
                    "mode": "features", "weights": "", "augmentation": "none", "epochs": "", "lr": ""}  # fmt: skip
        results.append({**identity, "seconds": seconds, **score_columns(metrics, task.facts.scores, SCORE_SETS)})
    write_csv(out / BASELINE_CSV, results, baseline_columns(task))
    return results


def _drop_stale_model(folder: Path) -> None:
    """Remove a model file an earlier `baseline --save-model` wrote in a row's `folder`, before a run without
    `--save-model` rewrites the row's scores: a row's model file is always the fit its metrics.json describes (a
    file another command or the user wrote is left alone)."""
    if model_writer(folder / MODEL_FILE) == "baseline":
        (folder / MODEL_FILE).unlink()


def _evaluate(
    model: Pipeline,
    split: tuple[np.ndarray, np.ndarray, list[ManifestRow]],
    dataset: Dataset,
    kind: Estimator,
    aggregate: str,
    folder: Path,
    prefix: str,
) -> dict | None:
    """Window and track scores of one split, its window and track predictions written to `folder` as a training
    run writes them (`prefix` "" or `TEST_PREFIX`); None, and no (stale) test files, when it has no window."""
    x, y, rows = split
    if not len(y):
        for stale in (TEST_PREDICTIONS, TEST_TRACK_PREDICTIONS):
            (folder / stale).unlink(missing_ok=True)
        return None
    info, task = dataset.info, dataset.task
    names = task.output_names(info, lambda: info.classes)
    outputs = kind.outputs(model, x, len(names))
    scores, tracks = task.score(outputs, y, [row.clip_id for row in rows], names, aggregate)
    write_split_predictions(folder, prefix, task, rows, outputs, tracks, names)
    return scores


def _split(
    rows: list[ManifestRow], found: dict[str, np.ndarray], classes: list[str], width: int, values: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray, list[ManifestRow]]]:
    """(features of `width` columns, class indices or, with `values`, the regression targets or 1/0 per mood,
    manifest rows) of the train, valid and test windows that have features."""
    parts: dict[str, tuple[list, list, list]] = {split: ([], [], []) for split in SPLITS}
    for row in rows:
        if row.image in found and row.split in parts:
            parts[row.split][0].append(found[row.image])
            parts[row.split][1].append(list(row.values) if values else classes.index(row.label))
            parts[row.split][2].append(row)
    return {
        split: (
            np.array(x, dtype=np.float32).reshape(-1, width),
            np.array(y, dtype=np.float64 if values else np.int64),
            kept,
        )
        for split, (x, y, kept) in parts.items()
    }


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    """Write the rows, keeping earlier rows of other (dataset, classifier) pairs already in the file (and its
    columns: a file holding classification and regression rows has both tasks' score columns)."""
    fresh = {(row["dataset"], row["arch"]) for row in rows}
    kept, header = [], []
    if path.is_file():
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            kept = [row for row in reader if (row.get("dataset"), row.get("arch")) not in fresh]
            header = list(reader.fieldnames or [])
    return write_csv_rows(path, list(dict.fromkeys([*header, *columns])), kept + rows)


def baseline_table(rows: list[dict]) -> Table:
    """Rich table of one baseline run: one row per estimator and feature set, its task's `baseline_scores` of
    windows and of tracks (a regression data set: per regressor, the mean over its targets of CCC and RMSE; a
    multilabel one: macro-F1 and mAP)."""
    task = next(task for task in TASKS.values() if all(key in rows[0] for key in task.facts.baseline_scores))
    keys = (*task.facts.baseline_scores, *(f"track_{key}" for key in task.facts.baseline_scores))
    first = estimator(task).called
    folds = f", mean ± sd over {rows[0]['folds']} folds" if rows[0].get("folds") else ""
    title = f"classic estimators — {rows[0]['dataset']} ({rows[0]['feature']}){folds}"
    table = Table(title=title, title_justify="left")
    for column in (first, *keys, "seconds"):
        name = column.replace("_", " ").replace("ccc", "CCC").replace("rmse", "RMSE").replace("map", "mAP")
        table.add_column(name, justify="left" if column == first else "right")
    for row in rows:
        scores = [_cell(row[key], row.get(key + SD_SUFFIX)) for key in keys]
        table.add_row(row["arch"], *scores, f"{row['seconds']:.2f}")
    return table


def _cell(value: float | str, sd: float | str | None = None) -> str:
    """A score of the terminal table (with ± its sd over folds, when it has one); – where undefined."""
    if value == "":
        return "–"
    return f"{value:.3f}" if sd in (None, "") else f"{value:.3f} ± {sd:.3f}"
