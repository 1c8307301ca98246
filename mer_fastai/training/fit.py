"""`lrfind` and `train`: fit one architecture on one prepared data set and write its run folder.

The settings are checked once (`TrainConfig.check` → `TrainSettings`) and read from there; the splits are
scored by `validation` and the run folder written by `outputs`. Both return their results; the pages (plots of the
LR range test, the curves and the scored splits, classification_report.txt, `report.html`, the terminal table) are
the caller's, drawn by its `pages` callback once the run folder is published (`api.training` passes the report's).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
import numpy as np
import torch

from .._plumbing.diskfull import writing
from .._plumbing.locks import reading
from .._plumbing.memory import reuse_freed_memory
from .._plumbing.progress import console, library_notes
from ..choices import PARTIAL
from ..data.dataset import REPAIR
from ..errors import MerError
from ..models.archs import check_spectrogram
from ..models.preprocessing import loader_size
from ..runs.layout import LR_PLOT, REFIT_KEY, TEST_PREFIX, scatter_file
from ..tasks.opened import Dataset
from .audio_augment import augmented_data
from .callbacks import EpochTimer
from .config import TrainConfig, TrainSettings, checked
from .distributed import distributed_fit, init_distributed, is_main_process, main_process_value, world_size
from .feature_cache import can_cache, head_learner
from .head_options import is_track
from .items import check_dataset, images_read, training_stats
from .learner import build_learner, set_mode
from .loaders import load_dataloaders
from .outputs import (
    LR_FILES,
    RUN_FILES,
    Scored,
    ScoredSplit,
    results_folder,
    run_title,
    versions,
    write_lr_find,
    write_run,
)
from .partial import can_cache_prefix, prefix_learner
from .task_options import check_task_options
from .track_head import track_learner, window_rows
from .tracking import epoch_callbacks, tracked
from .validation import Split, Splits, held_out_split

__all__ = ["find_lr", "train", "LRFindResult", "TrainResult"]

REFIT_NOTE = (
    "trained on every clip of the cross-validated splits: no clip was held out, so no validation score exists; its "
    "expected performance is the cross-validation's out-of-fold (pooled) scores in cv.json"
)  # metrics.json's `refit` entry
SCRATCH_DIR = "models"  # fastai's scratch folder in a run folder (the kept epoch's weights), removed after fitting


@dataclass
class LRFindResult:
    """Suggested learning rates, the range test's losses (`lrs`, `losses`) and where its plot goes."""

    suggestion: float
    suggestions: dict[str, float]
    plot: Path
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


@dataclass
class TrainResult:
    """A finished run: its folder, the learning rate used and its metrics (see `train` for the layout); its
    per-epoch `history` and `title` (for the curves), the LR range test it ran (`lr: auto`), if any, the data
    set it trained on, as opened once (its pages describe it without reading it again), and what the task's plots
    and reports show: each scored split (`splits`) and the validation windows (`windows`)."""

    run_dir: Path
    lr: float
    metrics: dict
    history: list[dict] = field(default_factory=list)
    title: str = ""
    lr_find: LRFindResult | None = None
    dataset: Dataset | None = None
    splits: list[ScoredSplit] = field(default_factory=list)
    windows: Scored | None = None


Pages = Callable[[TrainResult], None]  # a caller's pages of a finished, published run (its plots and report)


def task_monitor(config: TrainConfig | TrainSettings, dataset: Dataset) -> str:
    """The score that picks the kept epoch (`auto`: the task's main score), the settings checked against the data
    set's task (`task_options.check_task_options`)."""
    config = config.config if isinstance(config, TrainSettings) else config
    return check_task_options(vars(config), dataset.task)


def _learner(dataset: Dataset, config: TrainConfig | TrainSettings, run_dir: Path):
    """DataLoaders + learner in the requested mode, seeded."""
    from fastai.torch_core import set_seed

    settings = checked(config)
    config, spec = settings.config, settings.arch
    reuse_freed_memory()  # every batch's activations reuse freed pages (`_plumbing.memory`)
    info, task, spectrogram = dataset.info, dataset.task, dataset.spec
    set_seed(config.seed, reproducible=True)
    check_spectrogram(spec, spectrogram, str(dataset.path))
    dls = load_dataloaders(
        dataset,
        size=loader_size(settings.input_size, spectrogram),
        bs=config.bs,
        stats=training_stats(dataset, config.extra_train_dirs) if config.norm == "dataset" else spec.stats,
        augment=config.augment,
        balanced=config.balanced,
        extra_train_dirs=config.extra_train_dirs,
        num_workers=config.num_workers,
        seed=config.seed,
        cache=config.cache,
        resize=settings.resize,
    )
    if len(dls.train) == 0:
        raise MerError(f"{dataset.path}: fewer training images than one batch; lower --bs (now {config.bs})")
    learn = build_learner(
        dls, spec, config.weights, run_dir, config.train_bn, task=task, scale=task.output_scale(info),
        loss=config.loss, label_smoothing=config.label_smoothing,
    )  # fmt: skip
    set_mode(learn, config.mode, config.train_bn)
    if config.channels_last:
        learn.model.to(memory_format=torch.channels_last)
    return learn


def _fitter(learn, settings: TrainSettings, dataset: Dataset):
    """The learner to run lr_find and fit on: a track head's learner on the clips' cached features, a head learner
    on cached features where that is exact."""
    config = settings.config
    if is_track(config):
        return track_learner(learn, dataset)
    if config.feature_cache and not config.mixup and can_cache(learn, config.mode, config.train_bn, config.augment):
        return head_learner(learn, config.precision)
    cache = config.mode == PARTIAL and config.feature_cache and not config.mixup
    if config.precision != "fp32":  # it would change nothing: say so rather than record a precision never used
        raise MerError(
            f"--precision {config.precision}: sets the arithmetic of the freeze-mode feature cache, which this run "
            "does not use; drop --precision, or train with --mode freeze, --feature-cache, no --train-bn, "
            "--augment none and no --mixup"
        )
    if cache and can_cache_prefix(learn, config.train_bn, config.augment):
        return prefix_learner(learn)  # its cache lives in SCRATCH_DIR, removed after fitting
    return learn


def _lr_find(learn, run_dir: Path) -> LRFindResult:
    """fastai's LR range test (lr_find.json written); the valley suggestion is the one used by `--lr auto`."""
    from fastai.callback.schedule import minimum, steep, valley

    with learn.no_logging():
        found = learn.lr_find(suggest_funcs=(valley, minimum, steep), show_plot=False)
    suggestions = {name: float(value) for name, value in zip(("valley", "minimum", "steep"), found)}
    plot = write_lr_find(run_dir, suggestions)
    lrs, losses = [float(x) for x in learn.recorder.lrs], [float(x) for x in learn.recorder.losses]
    return LRFindResult(suggestions["valley"], suggestions, plot, lrs, losses)


@tracked
def find_lr(
    data_dir: str | Path | Dataset,
    config: TrainConfig,
    out: str | Path,
    pages: Callable[[LRFindResult], None] | None = None,
) -> LRFindResult:
    """Run the LR range test for `config` on a data set (a `Dataset`, or its folder), save `lr_find.json` in `out`
    and return the suggestions and losses; `pages` (the caller's) then draws `lr_find.png` from them."""
    dataset, out = data_dir, Path(out)  # opened by `tracked`
    settings: TrainSettings = config  # checked by `tracked`
    with reading(dataset.path):
        task_monitor(settings, check_dataset(dataset))
        with results_folder(out, LR_FILES) as stage:
            learn = _learner(dataset, settings, stage)
            try:
                with checkpoint(stage, "_tmp"):
                    found = _lr_find(_fitter(learn, settings, dataset), stage)
            finally:
                shutil.rmtree(stage / SCRATCH_DIR, ignore_errors=True)
    found = replace(found, plot=out / LR_PLOT)
    if pages is not None:
        pages(found)
    return found


@tracked
def train(
    data_dir: str | Path | Dataset, config: TrainConfig, out: str | Path, pages: Pages | None = None
) -> TrainResult:
    """Check the data set (a `Dataset`, or its folder), find the LR if asked, fit one cycle, keep the best or last
    epoch (`config.keep`), write the run folder (model, metrics, predictions) and return its results.

    Nothing is written unless the data set matches its manifest; the run folder receives its files only
    when the run has finished (see `results_folder`); then the caller's `pages` (main process) draws the curves,
    the LR range test's plot, the task's plots and reports of the scored splits and `report.html` beside them,
    while the run is still tracked.

    metrics.json layout: the validation scores at the top level (window `accuracy`, `macro_f1`,
    `per_class`, `confusion_matrix`, ...; `track_accuracy`, `track_macro_f1` and the `track` block:
    the clips' windows combined by `config.aggregate`), the same scores again as the `valid` block, and
    `test`: the same layout for the test split (the data set's own, or `--test DATA_DIR`), scored once
    with the final model, or null without one; then the run's settings, timings and `versions`.
    """
    dataset, run_dir = data_dir, Path(out)  # opened by `tracked`
    settings: TrainSettings = config  # checked by `tracked`
    config, info, rows = settings.config, dataset.info, list(dataset.rows)
    with reading(dataset.path, config.test_dir):
        task_monitor(settings, check_dataset(dataset))
        test = held_out_split(dataset, config.test_dir)
        init_distributed()
        if is_main_process() and any(row.split == "valid" for row in rows):  # a refit validates nothing
            _warn_unvalidated(dataset.task.unvalidated(rows, info.classes))
        splits = Splits(dataset, Split(dataset.path, dataset.split("valid")), test)
        scatters = tuple(prefix + scatter_file(name) for name in info.scale for prefix in ("", TEST_PREFIX))
        with results_folder(run_dir, RUN_FILES + LR_FILES + scatters) as stage:
            result = _fit(dataset, settings, splits, stage)
    tested = result.lr_find and replace(result.lr_find, plot=run_dir / LR_PLOT)
    result = replace(result, run_dir=run_dir, lr_find=tested)
    if is_main_process() and pages is not None:
        pages(result)
    return result


def _warn_unvalidated(classes: list[str]) -> None:
    if classes:
        console.print(
            f"[yellow]warning:[/] class(es) {', '.join(classes)} have training images but none in validation; "
            "their recall cannot be measured (support 0 in metrics.json, left out of macro-F1 unless predicted)",
            soft_wrap=True,
            highlight=False,
        )


def _fit(dataset: Dataset, settings: TrainSettings, splits: Splits, run_dir: Path) -> TrainResult:
    """Train in `run_dir` and (main process) score the test split and write the report and model there."""
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback

    started = time.time()
    config, info, valid, data_dir = settings.config, dataset.info, splits.valid, dataset.path
    task, monitor = dataset.task, task_monitor(settings, dataset)
    data = _training_data(dataset, settings, run_dir)
    learn = _learner(data, settings, run_dir)
    fitter = _fitter(learn, settings, data)
    found: list[LRFindResult] = []  # the range test, run by the main process alone

    def find() -> float:
        found.append(_lr_find(fitter, run_dir))
        return found[0].suggestion

    with images_read(data_dir), checkpoint(run_dir, "_tmp"):  # fastai's lr_find saves the weights first
        lr = main_process_value(find) if settings.lr is None else settings.lr
    timer = EpochTimer()
    callbacks = [timer, *epoch_callbacks()]
    if config.keep == "best":  # else the weights of the last epoch stay
        callbacks.insert(0, SaveModelCallback(monitor=monitor, fname="best", with_opt=False))
    if config.patience:
        callbacks.append(EarlyStoppingCallback(monitor=monitor, patience=config.patience))
    if config.mixup:
        from fastai.callback.mixup import MixUp

        callbacks.append(MixUp(config.mixup))
    if not valid.rows:  # a refit's data set: nothing held out, so nothing is validated (`refit_run`)
        callbacks.append(refit_run(fitter, config.keep))
    try:
        with library_notes(), images_read(data_dir), distributed_fit(fitter), checkpoint(run_dir, "best"):
            fitter.fit_one_cycle(config.epochs, lr, cbs=callbacks)
        history = [{**row, "seconds": round(s, 3)} for row, s in zip(_history(fitter), timer.seconds, strict=True)]
        with images_read(data_dir):
            probs, targets = fitter.get_preds(ds_idx=1) if valid.rows else (torch.zeros(0), torch.zeros(0))
        if is_track(config) and valid.rows:  # one row per clip: each window carries its clip's
            probs, targets = (torch.from_numpy(window_rows(t.numpy(), valid.clip_ids)) for t in (probs, targets))
    finally:
        shutil.rmtree(run_dir / SCRATCH_DIR, ignore_errors=True)
    if len(probs) != len(valid.rows):
        raise MerError(f"{data_dir}: {len(probs)} validation predictions for {len(valid.rows)} manifest rows; {REPAIR}")
    names = task.output_names(info, lambda: list(learn.dls.vocab))
    scored = Scored(names, None, None, None)  # a refit's: nothing validated
    if valid.rows:
        outputs, truth = probs.float().numpy(), targets.numpy()
        scores, tracks = task.score(outputs, truth, valid.clip_ids, names, config.aggregate)
        scored = Scored(names, truth, outputs, tracks)
        metrics = {**scores, "valid": scores, "test": None}
    else:
        metrics = {"valid": None, "test": None, REFIT_KEY: REFIT_NOTE}
    best = _best_epoch(history, monitor) if valid.rows else None
    metrics.update(
        arch=settings.arch.name,
        mode=config.mode,
        head=config.head,
        feature=info.feature,
        task=info.task,
        monitor=monitor,
        weights=config.weights,
        epochs=config.epochs,
        epochs_run=len(history),
        best_epoch=best,
        keep=config.keep,
        kept_epoch=best if config.keep == "best" else len(history) - 1,
        lr=lr,
        bs=config.bs,
        processes=world_size(),  # a distributed training's batch is bs × processes
        size=settings.input_size,
        seed=config.seed,
        data_dir=str(data_dir),
        cached_features=fitter is not learn,
        feature_precision=getattr(fitter, "feature_precision", None),  # `auto` resolved; None: no feature cache
        seconds=round(time.time() - started, 2),
        versions=versions(),
    )
    shown = []
    if is_main_process():  # one process of a distributed training: rank 0 writes
        shown = write_run(run_dir, learn, settings, splits, scored, history, metrics, started)
    found = found[0] if found else None
    return TrainResult(run_dir, lr, metrics, history, run_title(settings, info), found, dataset, shown, scored)


def refit_run(learn, keep: str):
    """The callback that skips validation in a refit (a data set with no validation split): the recorder logs the
    training loss alone, and the last epoch is kept (there is nothing to pick a best one on)."""
    from fastai.callback.core import Callback, CancelValidException

    if keep != "last":
        raise MerError("a refit has no validation clips to pick the best epoch on; it keeps the last one")
    learn.recorder.valid_metrics, learn.metrics = False, []  # the epoch line and history: the training loss alone

    class SkipValidation(Callback):
        order = 1000  # after every other callback's before_validate (the progress bar's after_validate ends its bar)

        def before_validate(self) -> None:
            raise CancelValidException

    return SkipValidation()


def checkpoint(run_dir: Path, name: str):
    """fastai's checkpoint `name` (SaveModelCallback's "best", lr_find's "_tmp") in the scratch folder: a full disk
    while saving it is one line naming it (`writing`); the scratch folder is removed after fitting."""
    return writing(run_dir / SCRATCH_DIR / f"{name}.pth")


def _training_data(dataset: Dataset, settings: TrainSettings, stage: Path) -> Dataset:
    """The data set training reads: `dataset`, or with `--augment-audio` a view adding the augmented copies of its
    training clips (their images cached in the run's --out, the parent of the staging folder `stage`)."""
    if not settings.config.augment_audio:
        return dataset
    return augmented_data(dataset, settings.config, stage.parent, stage)


def _history(learn) -> list[dict]:
    """Per-epoch losses and validation scores from fastai's recorder."""
    names = [n for n in learn.recorder.metric_names if n not in ("epoch", "time")]
    return [{"epoch": i, **{n: float(v) for n, v in zip(names, row)}} for i, row in enumerate(learn.recorder.values)]


def _best_epoch(history: list[dict], monitor: str) -> int:
    values = [row[monitor] for row in history]
    return int(np.argmin(values) if "loss" in monitor else np.argmax(values))
