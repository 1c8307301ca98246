"""`cv`: K-fold cross-validation over the clips of a prepared data set, one ordinary run per fold.

The clips are dealt into K grouped, stratified folds (`evaluation.folds`); each fold's data set is the original
images hard-linked into `OUT/folds/<k>/data`, with fold `k` validating and the others training, and each fold
is trained by `train` into `OUT/folds/<k>/`. Every clip is thus predicted exactly once out of fold (per
repeat); the folds' predictions are pooled into `oof_predictions.csv` and `oof_track_predictions.csv`
(`evaluation.oof`). `cv.json` holds the per-fold scores (the task's own, scored by the functions training
scores with), their mean, standard deviation and 95 % t-interval, the pooled (out-of-fold) scores and the
pooled confusion matrices (classification) or metrics (regression, multilabel). A finished fold whose settings
match is skipped on rerun. The folder's files: `runs.layout`. The pages (each run's plots, curves, LR plot and
report, drawn as it finishes; the task's pooled plots from `CVResult.plots`, the summary table, `report.html`) are
the caller's (`api.training.run_cv`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from .._plumbing.files import output_folder, write_json
from .._plumbing.locks import reads_dataset
from .._plumbing.progress import console
from ..data.dataset import DatasetInfo
from ..errors import MerError
from ..runs.layout import (
    BASELINE_CSV,
    CV_FILE,
    ENSEMBLE_FILE,
    FOLD_DATA,
    FOLD_FILE,
    FOLDS_DIR,
    MODEL_FILE,
    fold_dir,
    fold_dirs,
    is_finished,
    read_json_or_empty,
)
from ..runs.ownership import KIND_NAMES, folder_owner
from ..tasks.opened import Dataset, as_dataset
from ..training.config import TrainConfig, TrainSettings
from ..training.fit import Pages, task_monitor, train
from .folds import Fold, build_fold_data, dataset_folds, refuse_other_folds
from .oof import CVResult, pool_folds
from .refit import EXPECTED, refit_lines, refit_model

__all__ = ["run_cv", "CVResult"]

INTERVAL = "95 % t-interval over the fold values: mean ± t(0.975, n−1) · sd / √n (sd with n−1)"


def fold_fingerprint(data_dir: Path, info: DatasetInfo, config: TrainConfig, fold: Fold) -> str:
    """What a fold's training depends on: the data set, every training setting and its validation clips."""
    body = {
        "data_dir": str(data_dir.resolve()),
        "dataset": info.settings,
        "config": config.fingerprint_settings(),
        "valid": sorted(fold.valid_clips),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _is_done(run_dir: Path, fingerprint: str) -> bool:
    return _fold_record(run_dir).get("fingerprint") == fingerprint and is_finished(run_dir)


def fold_config(config: TrainConfig) -> TrainSettings:
    """The settings each fold trains with: `config` checked once (every fold's `train` reads these), keeping its
    last epoch. A fold's validation clips are its out-of-fold score, so nothing may be chosen on them: neither the
    kept epoch nor an early stop."""
    settings = config.check()  # `lr` a number, as fold fingerprints record it
    if settings.config.patience:
        raise MerError(
            f"--patience {settings.config.patience}: cv scores each fold on its validation clips, so it cannot stop "
            "early on them (that would flatter the score); drop --patience, or set --epochs lower"
        )
    return replace(settings, config=replace(settings.config, keep="last"))  # `keep` derives nothing


@reads_dataset
def run_cv(
    data_dir: str | Path | Dataset,
    config: TrainConfig,
    out: str | Path,
    folds: int = 5,
    repeats: int = 1,
    *,
    seed: int | None = None,
    ensemble: bool = True,
    refit: bool = False,
    show: bool = True,
    pages: Pages | None = None,
) -> CVResult:
    """Cross-validate `config` on the data set `data_dir` (a `Dataset`, or its folder) into `out` (resumable;
    `out` is locked meanwhile).

    `seed` deals the folds (default: the training seed; repeat r uses seed + r). With `ensemble`, the fold
    models are also written as one ensemble model file `out/ensemble.safetensors`. With `refit`, one more model
    is trained on every cross-validated clip with the same settings and epochs into `out/refit/`
    (`evaluation.refit`; it has no validation scores). `pages` (the caller's) draws each run's pages as it
    finishes; `show` prints each fold's start.
    """
    out, settings = Path(out), fold_config(config)
    config, dataset = settings.config, as_dataset(data_dir)
    data_dir, info = dataset.path, dataset.info
    rows, plan, group_source = dataset_folds(dataset, folds, repeats, config.seed if seed is None else seed)
    task_monitor(settings, dataset)  # --loss/--monitor of another task: refused before any fold trains
    _check_not_theirs(out)
    with output_folder(out, "--out"):
        _check_other_folds(out, plan, folds, repeats)
        ran, skipped, opened = [], [], [dataset]
        for fold in plan:
            run_dir = fold_dir(out, fold.index)
            fingerprint = fold_fingerprint(data_dir, info, config, fold)
            if _is_done(run_dir, fingerprint):
                skipped.append(fold.name)
                continue
            if show:
                console.print(f"fold {fold.index + 1}/{len(plan)}: {len(fold.valid_clips)} validation clips")
            (run_dir / FOLD_FILE).unlink(missing_ok=True)
            fold_data = build_fold_data(dataset, rows, fold, run_dir / FOLD_DATA)
            train(fold_data, settings, run_dir, pages)
            opened.append(fold_data)
            record = {"fingerprint": fingerprint, "folds": folds, "repeats": repeats, "repeat": fold.repeat}
            write_json(run_dir / FOLD_FILE, {**record, "fold": fold.fold})
            ran.append(fold.name)
        result = pool_folds(out, plan, rows, dataset)
        result.ran, result.skipped, result.opened = ran, skipped, opened
        if ensemble:
            from .ensemble import ensemble_models

            result.ensemble = ensemble_models(result.fold_dirs, out / ENSEMBLE_FILE, writer="cv").model_file
        if refit:
            result.refit = refit_model(dataset, settings, out, show, pages)
            result.opened += [result.refit.dataset] if result.refit.dataset else []
        write_json(out / CV_FILE, _cv_document(data_dir, config, plan, result, info, group_source))
    return result


def _check_not_theirs(out: Path) -> None:
    """Refuse an output folder another command wrote: a training run's or `evaluate`'s (whose report and plots a
    cross-validation's would replace), or one holding `baseline --folds`'s folds (whose fold data sets it would)."""
    owner = folder_owner(out) if out.is_dir() else None
    if owner:
        raise MerError(f"--out {out}: holds the output of {KIND_NAMES.get(owner, owner)}, whose report and plots cv "
                       "would replace; choose a new --out")  # fmt: skip
    theirs = next((run_dir for run_dir in fold_dirs(out) if (run_dir / BASELINE_CSV).is_file()), None)
    if theirs:
        raise MerError(f"--out {out}: holds the folds of `mer-fastai baseline --folds` ({theirs}), whose fold data "
                       "sets cv would replace; choose a new --out")  # fmt: skip


def _check_other_folds(out: Path, plan: list[Fold], folds: int, repeats: int) -> None:
    """Refuse an output folder that holds the folds of another cross-validation (another --folds/--repeats), by
    their names or by what a finished fold recorded."""

    def dealt_otherwise(run_dir: Path) -> bool:
        recorded = _fold_record(run_dir)
        return bool(recorded) and (recorded.get("folds"), recorded.get("repeats")) != (folds, repeats)

    refuse_other_folds(out, plan, dealt_otherwise)


def _fold_record(run_dir: Path) -> dict:
    """The fold.json of a finished fold ({} when there is none or it is unreadable)."""
    return read_json_or_empty(run_dir / FOLD_FILE)


def _cv_document(
    data_dir: Path, config: TrainConfig, plan: list[Fold], result: CVResult, info: DatasetInfo, group_source: str
) -> dict:
    folds = max(fold.fold for fold in plan) + 1
    document = {
        "folds": folds,
        "repeats": len(plan) // folds,
        "data_dir": str(data_dir),
        "feature": info.feature,
        "task": info.task,
        "groups": {"group_by": info.settings.get("group_by"), "from": group_source},
        "config": config.to_dict(),
        "classes" if result.confusion else "targets": result.classes,  # classes where scored by confusion matrices
        "runs": [
            {
                "name": fold.name,
                "repeat": fold.repeat,
                "fold": fold.fold,
                "valid_clips": len(fold.valid_clips),
                "scores": scores,
            }
            for fold, scores in zip(plan, result.per_fold, strict=True)
        ],  # fmt: skip
        "summary": result.summary,
        "interval": INTERVAL,
        "pooled": result.pooled,
        "pooled_per_repeat": result.per_repeat,
        "ensemble": result.ensemble.name if result.ensemble else None,
        "refit": result.refit.record(result.out) if result.refit else None,
        "models": model_files(result),
    }
    if result.confusion:
        document.update(confusion_matrix=result.confusion["windows"], track_confusion_matrix=result.confusion["tracks"])
    else:
        document.update(pooled_metrics=result.pooled_metrics)
    return document


def model_files(result: CVResult) -> dict[str, str]:
    """cv.json's `models`: which model file is which, and which scores describe it."""
    files = {
        f"{FOLDS_DIR}/<k>/{MODEL_FILE}": "fold k's model, trained without fold k's clips: scored on them (per fold)",
    }
    if result.ensemble:
        files[result.ensemble.name] = "the fold models averaged: described by the out-of-fold (pooled) scores"
    if result.refit:
        files[result.refit.record(result.out)["model"]] = f"one model on every clip: {EXPECTED}"
    return files


def model_lines(result: CVResult) -> list[str]:
    """cv's terminal lines naming each model file and the scores that describe it."""
    lines = [
        f"fold models: {result.out / FOLDS_DIR}/<k>/{MODEL_FILE} — each scored on the clips it did not train on "
        "(per fold); the pooled scores are their out-of-fold predictions together"
    ]
    if result.ensemble:
        lines.append(f"fold ensemble: {result.ensemble} — the fold models averaged; described by the pooled scores")
    return lines + (refit_lines(result.refit, result.task) if result.refit else [])
