"""`lrfind` and `train`: fit one architecture on one prepared data set and write its run folder."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
import numpy as np
import torch

from . import __version__
from .archs import get_arch
from .callbacks import EpochTimer
from .data import load_dataloaders
from .distributed import distributed_fit, init_distributed, is_main_process, main_process_value, world_size
from .errors import MerError
from .feature_cache import can_cache, head_learner
from .learner import build_learner, set_mode
from .modelfile import MODEL_FILE, save_model_file
from .prepare import read_dataset_info
from .progress import console
from .report import (
    CONFUSION_FILE,
    CURVES_FILE,
    METRICS_FILE,
    REPORT_FILE,
    classification_metrics,
    plot_confusion,
    plot_curves,
    summary_table,
    text_report,
    write_json,
)
from .spectrogram import SpecConfig
from .tensor_data import IN_MEMORY_AUGMENTS, load_tensor_dataloaders
from .tracking import epoch_callbacks, tracked
from .weights import check_weights

LR_PLOT = "lr_find.png"
MONITORS = ("accuracy", "macro_f1", "valid_loss")


@dataclass
class TrainConfig:
    """Every setting of one training run (also what a recipe grid cell holds)."""

    arch: str
    mode: str = "freeze"
    epochs: int = 20
    lr: float | str = "auto"
    bs: int = 32
    size: int | None = None
    weights: str = "imagenet"
    seed: int = 42
    train_bn: bool = False
    augment: str = "none"
    balanced: bool = False
    monitor: str = "accuracy"
    patience: int | None = None
    num_workers: int | None = None
    extra_train_dirs: list[str] = field(default_factory=list)
    cache: bool = True  # decode the spectrograms once into memory (not with augment "study")
    feature_cache: bool = True  # freeze mode: compute the frozen body's features once, train the head on them
    channels_last: bool = True  # channels-last weights: 7-40% faster convolutions on CPU (BENCHMARKS.md)
    track: str | None = None  # "mlflow": log the run to MLflow (tracking.py)
    tracking_uri: str | None = None  # default: $MLFLOW_TRACKING_URI or ./mlruns
    tracking_experiment: str | None = None  # default: the data set's feature

    def check(self) -> TrainConfig:
        get_arch(self.arch).check_size(self.size)
        check_weights(self.weights)
        if self.epochs < 1:
            raise MerError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.bs < 1:
            raise MerError(f"--bs must be at least 1 (got {self.bs})")
        if self.monitor not in MONITORS:
            raise MerError(f"unknown --monitor {self.monitor!r}; choose one of {', '.join(MONITORS)}")
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                self.lr = float(self.lr)
            except ValueError as exc:
                raise MerError(f"--lr must be a number or 'auto' (got {self.lr!r})") from exc
        return self


@dataclass
class LRFindResult:
    """Suggested learning rates and where the plot went."""

    suggestion: float
    suggestions: dict[str, float]
    plot: Path


@dataclass
class TrainResult:
    """A finished run: its folder, the learning rate used and its validation metrics."""

    run_dir: Path
    lr: float
    metrics: dict


def _learner(data_dir: Path, config: TrainConfig, run_dir: Path):
    """DataLoaders + learner in the requested mode, seeded."""
    from fastai.torch_core import set_seed

    config.check()
    set_seed(config.seed, reproducible=True)
    spec = get_arch(config.arch)
    common = {
        "size": config.size or spec.input_size,
        "bs": config.bs,
        "stats": spec.stats,
        "augment": config.augment,
        "balanced": config.balanced,
        "extra_train_dirs": config.extra_train_dirs,
    }
    if config.cache and config.augment in IN_MEMORY_AUGMENTS:
        dls = load_tensor_dataloaders(data_dir, **common)
    else:
        dls = load_dataloaders(data_dir, num_workers=config.num_workers, seed=config.seed, **common)
    if len(dls.train) == 0:
        raise MerError(f"{data_dir}: fewer training images than one batch; lower --bs (now {config.bs})")
    learn = build_learner(dls, spec, config.weights, run_dir, config.train_bn)
    set_mode(learn, config.mode, config.train_bn)
    if config.channels_last:
        learn.model.to(memory_format=torch.channels_last)
    return learn


def _fitter(learn, config: TrainConfig):
    """The learner to run lr_find and fit on: a head learner on cached features where that is exact."""
    if config.feature_cache and can_cache(learn, config.mode, config.train_bn, config.augment):
        return head_learner(learn)
    return learn


def _lr_find(learn, run_dir: Path) -> LRFindResult:
    """fastai's LR range test; the valley suggestion is the one used by `--lr auto`."""
    from fastai.callback.schedule import minimum, steep, valley

    with learn.no_logging():
        found = learn.lr_find(suggest_funcs=(valley, minimum, steep), show_plot=False)
    suggestions = {name: float(value) for name, value in zip(("valley", "minimum", "steep"), found)}
    plot = _plot_lr_find(run_dir / LR_PLOT, learn.recorder, suggestions)
    write_json(run_dir / "lr_find.json", {"suggestions": suggestions})
    return LRFindResult(suggestions["valley"], suggestions, plot)


def _plot_lr_find(path: Path, recorder, suggestions: dict[str, float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = np.array(recorder.lrs)
    losses = np.array([float(x) for x in recorder.losses])
    keep = slice(0, -5) if len(lrs) > 10 else slice(None)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs[keep], losses[keep])
    for (name, value), color in zip(suggestions.items(), ("red", "green", "orange")):
        ax.axvline(value, color=color, linestyle="--", label=f"{name}: {value:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@tracked
def find_lr(data_dir: str | Path, config: TrainConfig, out: str | Path) -> LRFindResult:
    """Run the LR range test for `config` and save `lr_find.png` and `lr_find.json` in `out`."""
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    learn = _learner(Path(data_dir), config, run_dir)
    try:
        return _lr_find(_fitter(learn, config), run_dir)
    finally:
        shutil.rmtree(run_dir / "models", ignore_errors=True)


@tracked
def train(data_dir: str | Path, config: TrainConfig, out: str | Path, show: bool = True) -> TrainResult:
    """Find the LR if asked, fit one cycle, keep the best epoch, then write the report and model."""
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback

    data_dir, run_dir = Path(data_dir), Path(out)
    config.check()
    info = read_dataset_info(data_dir)
    init_distributed()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    learn = _learner(data_dir, config, run_dir)
    fitter = _fitter(learn, config)
    auto = config.lr == "auto"
    lr = main_process_value(lambda: _lr_find(fitter, run_dir).suggestion) if auto else float(config.lr)
    timer = EpochTimer()
    callbacks = [SaveModelCallback(monitor=config.monitor, fname="best", with_opt=False), timer]
    callbacks += epoch_callbacks()
    if config.patience:
        callbacks.append(EarlyStoppingCallback(monitor=config.monitor, patience=config.patience))
    try:
        with distributed_fit(fitter):
            fitter.fit_one_cycle(config.epochs, lr, cbs=callbacks)
        history = [{**row, "seconds": round(s, 3)} for row, s in zip(_history(fitter), timer.seconds, strict=True)]
        probs, targets = fitter.get_preds(ds_idx=1)
    finally:
        shutil.rmtree(run_dir / "models", ignore_errors=True)
    classes = list(learn.dls.vocab)
    predicted = probs.argmax(dim=1).numpy()
    metrics = classification_metrics(targets.numpy(), predicted, classes)
    best = _best_epoch(history, config.monitor)
    metrics.update(
        arch=config.arch,
        mode=config.mode,
        feature=info["feature"],
        weights=config.weights,
        epochs=config.epochs,
        epochs_run=len(history),
        best_epoch=best,
        lr=lr,
        bs=config.bs,
        processes=world_size(),  # a distributed training's batch is bs × processes
        size=config.size or get_arch(config.arch).input_size,
        seed=config.seed,
        data_dir=str(data_dir),
        cached_features=fitter is not learn,
        seconds=round(time.time() - started, 2),
    )
    if not is_main_process():
        return TrainResult(run_dir, lr, metrics)  # one process of a distributed training: rank 0 writes
    title = f"{config.arch} · {config.mode} · {info['feature']}"
    write_json(run_dir / METRICS_FILE, metrics)
    write_json(run_dir / "config.json", {"data_dir": str(data_dir), **asdict(config), "lr": lr})
    write_json(run_dir / "history.json", {"history": history})
    (run_dir / REPORT_FILE).write_text(text_report(targets.numpy(), predicted, classes))
    plot_confusion(run_dir / CONFUSION_FILE, metrics["confusion_matrix"], classes, title)
    plot_curves(run_dir / CURVES_FILE, history, title)
    save_model_file(run_dir / MODEL_FILE, learn.model, model_metadata(learn, config, info, data_dir, metrics))
    if show:
        console.print(summary_table(metrics, f"{title} — best epoch {best + 1}, lr {lr:.2e}"))
        console.print(f"run folder: [bold]{run_dir}")
    return TrainResult(run_dir, lr, metrics)


def model_metadata(learn, config: TrainConfig, info: dict, data_dir: Path, metrics: dict) -> dict:
    """What a model file must say to be rebuilt and fed exactly like in training."""
    spec = get_arch(config.arch)
    return {
        "arch": config.arch,
        "classes": list(learn.dls.vocab),
        "feature": info["feature"],
        "spectrogram": SpecConfig.load(data_dir).to_dict(),
        "stats": [list(spec.stats[0]), list(spec.stats[1])],
        "input_size": config.size or spec.input_size,
        "mode": config.mode,
        "resize": "crop" if config.augment == "study" else "squish",  # fastai's validation transform
        "cuts": info.get("settings", {}).get("cuts"),  # rating cut points of 3-level features
        "package_version": __version__,
        "metrics": {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]},
    }


def _history(learn) -> list[dict]:
    """Per-epoch losses and validation scores from fastai's recorder."""
    names = [n for n in learn.recorder.metric_names if n not in ("epoch", "time")]
    return [{"epoch": i, **{n: float(v) for n, v in zip(names, row)}} for i, row in enumerate(learn.recorder.values)]


def _best_epoch(history: list[dict], monitor: str) -> int:
    values = [row[monitor] for row in history]
    return int(np.argmin(values) if "loss" in monitor else np.argmax(values))


def load_run_metrics(run_dir: str | Path) -> dict:
    """The metrics.json of a finished run."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise MerError(f"{run_dir}: no {METRICS_FILE}; did the training finish?")
    return json.loads(path.read_text())
