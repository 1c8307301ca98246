"""Writing a training run's folder: staged and published whole, the model file with its record, the split
predictions, config, history and metrics.json last, and the LR range test's suggestions. The plots and reports
are the caller's pages, drawn from what `write_run` returns once the folder is published."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._plumbing.files import output_folder, write_json
from .._version import __version__
from ..choices import TRACK_POOLING
from ..data.dataset import DatasetInfo
from ..models.modelfile import CHECKSUM, save_model_file
from ..models.modelmeta import ModelMeta
from ..runs.layout import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    HISTORY_FILE,
    LABELS_FILE,
    LR_JSON,
    LR_PLOT,
    METRICS_FILE,
    MODEL_CHECKSUM,
    MODEL_FILE,
    REPORT_FILE,
    REPORT_HTML,
    RUN_CONFIG,
    TEST_PREDICTIONS,
    TEST_PREFIX,
    TEST_TRACK_PREDICTIONS,
    TRACK_CONFUSION_FILE,
    TRACK_PREDICTIONS,
    VALID_PREDICTIONS,
    model_header,
)
from ..runs.ownership import check_own_folder, claim_folder
from ..runs.predictions import write_split_predictions
from ..scoring.scores import Tracks, ValueTracks
from ..tasks.opened import Dataset
from .config import TrainSettings
from .distributed import is_main_process
from .head_options import is_track
from .validation import Splits, score_test

LR_FILES = (LR_PLOT, LR_JSON)
PREDICTION_FILES = (VALID_PREDICTIONS, TRACK_PREDICTIONS, TEST_PREDICTIONS, TEST_TRACK_PREDICTIONS)
CONFUSION_FILES = (CONFUSION_FILE, TRACK_CONFUSION_FILE, TEST_PREFIX + TRACK_CONFUSION_FILE)
# the plots, classification_report.txt, report.html, curves.png and lr_find.png are the caller's pages, drawn
# after the run folder is published (`api.training.run_pages`); the folder owns them all
RUN_FILES = (METRICS_FILE, RUN_CONFIG, HISTORY_FILE, REPORT_FILE, *CONFUSION_FILES, CURVES_FILE, MODEL_FILE)
RUN_FILES += (*PREDICTION_FILES, REPORT_HTML, CIRCUMPLEX_FILE, TEST_PREFIX + CIRCUMPLEX_FILE, LABELS_FILE)
RUN_FILES += (TEST_PREFIX + LABELS_FILE,)
RUN_KIND = "run"  # what `runs.ownership` calls a training run's folder (train, lrfind, cv's folds)
STAGING = ".partial"  # a run writes here; its files move into the run folder once it has finished


@contextmanager
def results_folder(out: Path, owned: tuple[str, ...]) -> Iterator[Path]:
    """The folder a command writes into: a staging folder inside the locked output folder `out`.

    On success its files replace those in `out` (the `owned` files an earlier run left there and this
    one did not write are removed); on any failure, Ctrl-C included, it is removed, so an earlier run
    in `out` stays as it was and a folder created here is not left behind. An `out` holding any of the `owned`
    names that a training run did not write (another command's output, the user's own file) is refused first. In
    a distributed training only the main process creates, locks and fills `out`; the others get the same staging
    path.
    """
    stage = out / STAGING
    if not is_main_process():
        yield stage
        return
    with output_folder(out, "--out"):
        check_own_folder(out, RUN_KIND, owned)  # before any work: never over another command's or the user's files
        shutil.rmtree(stage, ignore_errors=True)  # left by a killed run
        stage.mkdir()
        try:
            yield stage
            _publish(stage, out, owned)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out: Path, owned: tuple[str, ...]) -> None:
    """Move the staged files into `out`: the old metrics.json is removed first and the new one moved last,
    so a run folder interrupted here never looks finished."""
    claim_folder(out, RUN_KIND)
    (out / METRICS_FILE).unlink(missing_ok=True)
    files = sorted((p for p in stage.iterdir() if p.is_file()), key=lambda p: p.name == METRICS_FILE)
    for name in set(owned) - {p.name for p in files}:
        (out / name).unlink(missing_ok=True)
    for path in files:
        path.replace(out / path.name)


@dataclass
class Scored:
    """A run's validation windows scored: the output names, true outputs, outputs and tracks."""

    names: list[str]
    truth: np.ndarray | None  # None (and outputs, tracks): a refit's run, which validates nothing
    outputs: np.ndarray | None
    tracks: Tracks | ValueTracks | None


@dataclass
class ScoredSplit:
    """What the pages show of one scored split of a run: its files' prefix ("" or `TEST_PREFIX`), its scores (the
    metrics' `valid` or `test` block), its tracks and the plots' title."""

    prefix: str
    scores: dict
    tracks: Tracks | ValueTracks
    title: str


def write_run(
    run_dir: Path,
    learn,
    settings: TrainSettings,
    splits: Splits,
    scored: Scored,
    history: list[dict],
    metrics: dict,
    started: float,
) -> list[ScoredSplit]:
    """A finished run's files: the model, the validation split's predictions, the test split scored once with the
    final model, config, history and metrics.json last (its `test` block and `seconds` filled in here). Returns the
    scored splits, which the caller's pages plot (as they draw the curves from `TrainResult.history`)."""
    info, valid, test = splits.dataset.info, splits.valid, splits.test
    task = splits.dataset.task
    title = run_title(settings, info)
    meta = model_metadata(learn, settings, splits.dataset, scored.names, metrics)
    save_model_file(run_dir / MODEL_FILE, learn.model, meta, "train")
    metrics[MODEL_CHECKSUM] = (model_header(run_dir / MODEL_FILE) or {}).get(CHECKSUM)  # binds the scores to it
    shown = []
    if scored.outputs is not None:
        write_split_predictions(run_dir, "", task, valid.rows, scored.outputs, scored.tracks, scored.names)
        shown.append(ScoredSplit("", metrics["valid"], scored.tracks, title))
    if test is not None:  # scored once, with the final model
        outputs, metrics["test"], tracks = score_test(learn.model, meta, task, test, settings.config.aggregate)
        write_split_predictions(run_dir, TEST_PREFIX, task, test.rows, outputs, tracks, scored.names)
        shown.append(ScoredSplit(TEST_PREFIX, metrics["test"], tracks, f"{title} — test"))
    metrics["seconds"] = round(time.time() - started, 2)
    config = {"data_dir": str(valid.data_dir), **settings.config.to_dict(), "lr": metrics["lr"]}
    write_json(run_dir / RUN_CONFIG, config)
    write_json(run_dir / HISTORY_FILE, {"history": history})
    write_json(run_dir / METRICS_FILE, metrics)
    return shown


def run_title(settings: TrainSettings, info: DatasetInfo) -> str:
    """What a run's plots and table are titled: architecture, mode and feature."""
    return f"{settings.arch.name} · {settings.config.mode} · {info.feature}"


def model_metadata(learn, settings: TrainSettings, dataset: Dataset, names: list[str], metrics: dict) -> ModelMeta:
    """What a model file must say to be rebuilt and fed exactly like in training."""
    config, info = settings.config, dataset.info
    return ModelMeta(
        arch=settings.arch.name,  # a musicnn body ending at another layer: musicnn-msd:pooled
        classes=tuple(names),
        feature=info.feature,
        spec=dataset.spec,
        stats=input_stats(learn.dls),
        input_size=settings.input_size,
        mode=config.mode,
        head=config.head,
        pooling=TRACK_POOLING if is_track(config) else None,
        resize=settings.resize,  # fastai's validation transform
        package_version=__version__,
        task=dataset.task,
        **dataset.task.model_record(info, metrics),
    )


def input_stats(dls) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) per channel that the loaders' `Normalize` applies: what the model was trained on."""
    normalize = next(t for t in dls.after_batch.fs if type(t).__name__ == "Normalize")
    # rounded to float32's precision, so that the table's statistics read back as written (0.485, not 0.48500001)
    return tuple(tuple(round(v, 7) for v in t.flatten().tolist()) for t in (normalize.mean, normalize.std))


def versions() -> dict[str, str]:
    """The versions of mer-fastai, torch and fastai a run was trained with."""
    import fastai

    return {"mer-fastai": __version__, "torch": torch.__version__, "fastai": fastai.__version__}


def write_lr_find(run_dir: Path, suggestions: dict[str, float]) -> Path:
    """lr_find.json (the suggestions); returns the plot's path, which the caller's pages draw."""
    write_json(run_dir / LR_JSON, {"suggestions": suggestions})
    return run_dir / LR_PLOT
