"""The classic-ML baseline cross-validated on the folds `cv` deals, so that it compares with cross-validated CNNs.

`cross_validate_baseline` deals the clips of a data set into the K·R grouped, stratified folds `cv.run_cv`
trains on (the same folds at the same seed), runs `classic.run_baseline` on each fold's data set into
`OUT/folds/<k>/` (each classifier's metrics and prediction files, as a fold run has them) and summarises
every classifier as `cv` summarises a setting: each window and track score's mean over the folds and its
standard deviation (`<score>_sd`). The features are extracted once, over the whole data set, and handed to
every fold.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..._plumbing.files import output_folder
from ..._plumbing.locks import reads_dataset
from ...bounds import SEED
from ...choices import CLASSIFIERS
from ...errors import MerError
from ...runs.layout import BASELINE_CSV, CV_FILE, FOLD_DATA, fold_dir, fold_dirs
from ...runs.ownership import folder_owner
from ...scoring.columns import SD_SUFFIX, SPREAD_SETS, csv_score
from ...tasks.base import Task
from ...tasks.opened import Dataset, as_dataset
from ..folds import Fold, build_fold_data, dataset_folds, refuse_other_folds
from ..oof import describe
from .classic import baseline_columns, run_baseline, write_csv
from .featuresets import DEFAULT_FEATURES, gather, parse_features, share
from .savemodel import check_save_model

__all__ = ["cross_validate_baseline", "BaselineCV"]


@dataclass
class BaselineCV:
    """A cross-validated baseline: per classifier its summary row and its row on each fold."""

    rows: list[dict]  # one per classifier: each score's mean over the folds, its sd in `<score>_sd`, `folds`
    per_fold: dict[str, list[dict]]  # classifier → its baseline.csv row of each fold, in fold order


@reads_dataset
def cross_validate_baseline(
    data_dir: str | Path | Dataset,
    out: str | Path,
    folds: int = 5,
    repeats: int = 1,
    *,
    classifiers: list[str] | None = None,
    seed: int = 42,
    aggregate: str = "mean",
    workers: int | None = None,
    progress: bool = True,
    features: str = DEFAULT_FEATURES,
    layer: str = "penultimate",
    save_model: bool = False,
) -> BaselineCV:
    """Score each classifier on every fold of the K·R folds dealt with `seed`; per classifier a row with the
    mean over the folds of its window and track scores, their sd in `<score>_sd`, and `folds`, also written
    to `out/baseline.csv` (beside each fold's own in `out/folds/<k>/`). `save_model`: each fold's linear model
    as `out/folds/<k>/<row>/model.safetensors` (`run_baseline`)."""
    SEED.check(seed, "--seed")
    out, chosen = Path(out), parse_features(features, layer)
    dataset = as_dataset(data_dir)
    rows, plan, _ = dataset_folds(dataset, folds, repeats, seed)
    if save_model:  # refused before any fold is written
        outs = [fold_dir(out, fold.index) for fold in plan]
        check_save_model(list(dict.fromkeys(classifiers or CLASSIFIERS)), chosen, outs)
    _check_other_folds(out, plan)
    scored: dict[str, list[dict]] = defaultdict(list)
    with output_folder(out, "--out"):
        gather(dataset, chosen, out, workers, progress)  # once for every fold
        for fold in plan:
            fold_out = fold_dir(out, fold.index)
            fold_data = build_fold_data(dataset, rows, fold, fold_out / FOLD_DATA)
            share(dataset, fold_data, chosen, out, fold_out)
            for row in run_baseline(
                fold_data,
                fold_out,
                classifiers,
                seed,
                aggregate=aggregate,
                workers=workers,
                progress=False,
                features=features,
                layer=layer,
                save_model=save_model,
            ):
                scored[row["arch"]].append(row)
        task = dataset.task
        summary = [
            _summary_row(fold_rows, task, dataset.path.resolve().name, len(plan)) for fold_rows in scored.values()
        ]
        spread = [prefix + key + SD_SUFFIX for prefix in SPREAD_SETS for key in task.facts.scores]
        write_csv(out / BASELINE_CSV, summary, [*baseline_columns(task), *spread, "folds"])
    return BaselineCV(summary, dict(scored))


def _check_other_folds(out: Path, plan: list[Fold]) -> None:
    """Refuse an output folder holding `cv`'s folds (their fold data sets would be replaced), or a fold this
    cross-validation does not deal (another --folds/--repeats: its rows and model files would sit beside this
    run's as if they were of it)."""
    theirs = [path for path in fold_dirs(out) if folder_owner(path) is not None]
    if (out / CV_FILE).is_file() or theirs:
        where = theirs[0] if theirs else out / CV_FILE
        raise MerError(f"--out {out}: holds `mer-fastai cv`'s folds ({where}), whose data sets and records describe "
                       "its own models; baseline does not write there: choose a new --out")  # fmt: skip
    refuse_other_folds(out, plan)


def _summary_row(fold_rows: list[dict], task: Task, dataset: str, folds: int) -> dict:
    """One classifier over the folds: its identity, total seconds, each score's mean and sd (test scores
    are left empty: the folds never see a test split)."""
    first = fold_rows[0]
    row = {**first, "dataset": dataset, "seconds": round(sum(r["seconds"] for r in fold_rows), 3)}
    row.update({key: "" for key in first if key.startswith("test_")})
    for score in (prefix + key for prefix in SPREAD_SETS for key in task.facts.scores):
        values = describe([None if r[score] == "" else float(r[score]) for r in fold_rows])
        row[score], row[score + SD_SUFFIX] = csv_score(values["mean"]), csv_score(values["sd"])
    return {**row, "folds": folds}
