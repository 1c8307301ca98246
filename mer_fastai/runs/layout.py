"""The result folders as a schema: every file name a run, cross-validation, grid or GAN folder holds.

Run folder (`train`, one cell of `run`, one fold of `cv`)::

    config.json            the training settings (RUN_CONFIG)
    metrics.json           scores and facts of the finished run (METRICS_FILE); its presence marks the run
                           as finished; history.json: the per-epoch scores
    model.safetensors      weights + model metadata (MODEL_FILE)
    valid_predictions.csv  one row per validation window; track_predictions.csv one per track
    curves.png, confusion_matrix.png, track_confusion_matrix.png, classification_report.txt,
    scatter_<target>.png, circumplex.png, per_label.png, lr_find.png/.json, report.html

Cross-validation folder (`cv`)::

    cv.json                pooled and per-fold scores, the plan (CV_FILE); marks the folder as finished
    folds/<k>/             fold k's run folder, with fold.json (its settings fingerprint) and data/ (the
                           fold's data set, images hard-linked from the original)
    oof_predictions.csv, oof_track_predictions.csv   every clip predicted once out of fold (per repeat)
    ensemble.safetensors   the fold models as one ensemble model file
    refit/                 with --refit: one more run folder, trained on every cross-validated clip with the
                           folds' settings and epochs (model.safetensors; refit.json: its settings fingerprint;
                           data/: its data set); no validation scores, its test split's scores if there is one

Grid folder (`run RECIPE`)::

    state.json             every cell's status; results.csv, results.md, results_heatmap.png, report.html
    recipe-<experiment>.json   the recipe as run (recipe_file)
    runs/<cell>/           a run or cross-validation folder per cell
    data/<set>-<feature>/  the data sets the cells train on, each prepared once
    baseline/<set>-<feature>/   the baseline rows' folders (baseline.csv, features.npz)
    gan/<set>-<feature>-<backend>-<steps>steps/   a GAN stage: model/, generated/, done
    demo-audio/            a recipe's synthetic audio

GAN run folder (`gan train`): generator.safetensors, gan.json, metrics.json, samples.png.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MerError

# the model file's names (and its light header readers), owned by `models.header`, in this folder schema
from ..models.header import (  # noqa: F401
    ENSEMBLE_FILE,
    METADATA_KEY,
    MODEL_FILE,
    RUN_CONFIG,
    WRITER_KEY,
    model_file_path,
    model_header,
    model_writer,
)

# ------------------------------------------------------------------ a run folder
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"  # the per-epoch scores
MODEL_CHECKSUM = "model_checksum"  # in metrics.json: the checksum of the model file the scores are of
OWNER_FILE = ".written-by"  # in an output folder: the kind of output it holds ("run", "evaluate"), see runs.ownership
VALID_PREDICTIONS = "valid_predictions.csv"
TRACK_PREDICTIONS = "track_predictions.csv"
TEST_PREFIX = "test_"  # the test split's files: test_predictions.csv, test_track_predictions.csv, ...
TEST_PREDICTIONS, TEST_TRACK_PREDICTIONS = "test_predictions.csv", TEST_PREFIX + TRACK_PREDICTIONS
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
TRACK_CONFUSION_FILE = "track_confusion_matrix.png"
REPORT_FILE = "classification_report.txt"
CIRCUMPLEX_FILE = "circumplex.png"
LABELS_FILE = "per_label.png"  # multilabel: precision, recall, F1 and AP per mood
LR_PLOT = "lr_find.png"
LR_JSON = "lr_find.json"
REPORT_HTML = "report.html"
PREDICTIONS_FILE = "predictions.csv"  # `evaluate`'s output folder

# ------------------------------------------------------------------ a cross-validation folder
CV_FILE = "cv.json"
FOLDS_DIR = "folds"
FOLD_FILE = "fold.json"  # in a fold's run folder: the settings fingerprint it was trained with
FOLD_DATA = "data"  # in a fold's folder: its data set
OOF_PREDICTIONS = "oof_predictions.csv"
OOF_TRACKS = "oof_track_predictions.csv"
REFIT_DIR = "refit"  # cv --refit: the run folder of the model trained on every cross-validated clip
REFIT_FILE = "refit.json"  # in the refit folder: the settings fingerprint it was trained with
REFIT_KEY = "refit"  # in a refit's metrics.json (no validation block): why it has no validation scores

# ------------------------------------------------------------------ a grid folder
STATE_FILE = "state.json"
CELLS_DIR = "runs"  # one run or cross-validation folder per cell
GRID_DATA = "data"  # the data sets the cells train on, prepared once
GRID_BASELINE = "baseline"  # the baseline rows' folders
GRID_GAN = "gan"  # a GAN stage's folders: each holds GAN_MODEL, GAN_GENERATED and, once both are whole, GAN_DONE
GRID_DEMO_AUDIO = "demo-audio"  # a recipe's synthetic demo audio
GAN_MODEL = "model"
GAN_GENERATED = "generated"
GAN_DONE = "done"
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
HEATMAP = "results_heatmap.png"
BASELINE_CSV = "baseline.csv"
FEATURES_FILE = "features.npz"  # the baseline's cached features

# ------------------------------------------------------------------ a GAN run folder
GAN_CHECKPOINT = "generator.safetensors"
GAN_META = "gan.json"
GAN_SAMPLES = "samples.png"


def prediction_files(folder: Path, prefix: str) -> tuple[Path, Path]:
    """A split's window and track prediction files in a run folder: `prefix` "" (validation) or `TEST_PREFIX`."""
    return folder / (TEST_PREDICTIONS if prefix else VALID_PREDICTIONS), folder / (prefix + TRACK_PREDICTIONS)


def recipe_file(experiment: str) -> str:
    """The copy of the recipe a grid folder was run with."""
    return f"recipe-{experiment}.json"


def scatter_file(target: str) -> str:
    """The predicted-vs-true scatter plot of one regression target."""
    return f"scatter_{target}.png"


def fold_dir(cv_folder: Path, index: int) -> Path:
    """Fold `index`'s run folder inside a cross-validation folder."""
    return cv_folder / FOLDS_DIR / str(index)


def fold_dirs(cv_folder: Path) -> list[Path]:
    """A cross-validation folder's fold run folders, in fold order."""
    folds = cv_folder / FOLDS_DIR
    found = [p for p in folds.iterdir() if p.is_dir() and p.name.isdigit()] if folds.is_dir() else []
    return sorted(found, key=lambda p: int(p.name))


def folder_kind(folder: Path) -> str:
    """'run', 'grid' or 'cv', from the files the folder holds."""
    if not folder.is_dir():
        raise MerError(f"{folder}: no such folder; pass a run, cross-validation or grid folder")
    if (folder / CV_FILE).is_file():
        return "cv"
    if (folder / RESULTS_CSV).is_file():
        return "grid"
    if (folder / METRICS_FILE).is_file():
        return "run"
    raise MerError(
        f"{folder}: holds no {METRICS_FILE}, {RESULTS_CSV} or {CV_FILE}; pass a folder made by "
        f"`mer-fastai train`, `cv` or `run` (a training that did not finish leaves no {METRICS_FILE})"
    )


def is_finished(run_dir: Path) -> bool:
    """Whether a run folder holds a finished run: its `metrics.json` is written last."""
    return (run_dir / METRICS_FILE).is_file()


def read_json(path: Path) -> dict:
    """A JSON file of a result folder; a damaged one is one clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MerError(f"{path}: cannot be read ({exc}); rerun the command that wrote it") from exc


def read_json_or_empty(path: Path) -> dict:
    """An optional JSON record of a result folder (a fold's fold.json, a model's run config.json): {} when it is
    missing, cannot be read or does not hold a table."""
    try:
        record = read_json(path)
    except MerError:
        return {}
    return record if isinstance(record, dict) else {}


def read_metrics(run_dir: Path) -> dict:
    """A finished run's `metrics.json`."""
    return read_json(run_dir / METRICS_FILE)


def read_config(run_dir: Path) -> dict:
    """A run's recorded training settings (`config.json`); {} when it has none."""
    path = run_dir / RUN_CONFIG
    return read_json(path) if path.is_file() else {}
