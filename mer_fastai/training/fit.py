"""`lrfind` and `train`: fit one architecture on one prepared data set and write its run folder."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
import numpy as np
import torch

from .. import __version__
from .._plumbing.files import atomic_write, output_folder, reading, write_json
from .._plumbing.progress import console
from ..choices import TASK_MONITORS
from ..data.dataset import REPAIR, DatasetInfo, ManifestRow, read_info, read_spec
from ..errors import MerError
from ..models.archs import check_spectrogram, get_arch
from ..models.modelfile import save_model_file
from ..models.modelmeta import MOOD_DECISION, ModelMeta, resize_policy
from ..plots.figures import plot_confusion, plot_curves, plot_label_bars, plot_value_tracks, save_figure
from ..plots.tables import multilabel_table, regression_table, summary_table
from ..runs.layout import (
    CIRCUMPLEX_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    LABELS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REPORT_FILE,
    RUN_CONFIG,
    TRACK_CONFUSION_FILE,
    scatter_file,
)
from ..scoring.metrics import text_report
from ..scoring.scores import (
    TEST_PREDICTIONS,
    TEST_PREFIX,
    TEST_TRACK_PREDICTIONS,
    TRACK_PREDICTIONS,
    VALID_PREDICTIONS,
    Tracks,
    ValueTracks,
    score_multilabel,
    score_regression,
    score_windows,
    write_predictions,
)
from .callbacks import EpochTimer
from .config import TrainConfig, flag
from .distributed import distributed_fit, init_distributed, is_main_process, main_process_value, world_size
from .feature_cache import can_cache, head_learner
from .learner import build_learner, set_mode
from .loaders import check_dataset, classes_without_validation, images_read, load_dataloaders, training_stats
from .tensor_loaders import IN_MEMORY_AUGMENTS, load_tensor_dataloaders
from .tracking import epoch_callbacks, tracked

LR_PLOT = "lr_find.png"
LR_JSON = "lr_find.json"
LR_FILES = (LR_PLOT, LR_JSON)
PREDICTION_FILES = (VALID_PREDICTIONS, TRACK_PREDICTIONS, TEST_PREDICTIONS, TEST_TRACK_PREDICTIONS)
CONFUSION_FILES = (CONFUSION_FILE, TRACK_CONFUSION_FILE, TEST_PREFIX + TRACK_CONFUSION_FILE)
HTML_REPORT = "report.html"  # written after the run folder is published (html_report.REPORT_HTML)
RUN_FILES = (METRICS_FILE, RUN_CONFIG, "history.json", REPORT_FILE, *CONFUSION_FILES, CURVES_FILE, MODEL_FILE)
RUN_FILES += (*PREDICTION_FILES, HTML_REPORT, CIRCUMPLEX_FILE, TEST_PREFIX + CIRCUMPLEX_FILE, LABELS_FILE)
RUN_FILES += (TEST_PREFIX + LABELS_FILE,)
STAGING = ".partial"  # a run writes here; its files move into the run folder once it has finished


@dataclass
class LRFindResult:
    """Suggested learning rates and where the plot went."""

    suggestion: float
    suggestions: dict[str, float]
    plot: Path


@dataclass
class TrainResult:
    """A finished run: its folder, the learning rate used and its metrics (see `train` for the layout)."""

    run_dir: Path
    lr: float
    metrics: dict


@dataclass
class Split:
    """Scored windows of a data set: its folder and the manifest rows, in the order they are scored."""

    data_dir: Path
    rows: list[ManifestRow]

    @property
    def clip_ids(self) -> list[str]:
        return [row.clip_id for row in self.rows]


@dataclass
class Splits:
    """The data set a run trains on, its validation windows and what it is tested on (if anything)."""

    info: DatasetInfo
    valid: Split
    test: Split | None


def task_monitor(config: TrainConfig, info: DatasetInfo) -> str:
    """The score that picks the kept epoch (`auto`: the task's main score), the task's options checked:
    `--loss` and `--monitor ccc` are for regression."""
    monitor = config.monitor if config.monitor != "auto" else TASK_MONITORS[info.task][0]
    if monitor not in TASK_MONITORS[info.task]:
        raise MerError(
            f"--monitor {monitor}: not a score of a {info.task} data set; choose auto or "
            f"{' or '.join(TASK_MONITORS[info.task])}"
        )
    if not info.is_regression and config.loss != "auto":
        raise MerError(
            f"--loss {config.loss}: is a regression loss (classification uses cross-entropy, multilabel BCE); drop it"
        )
    for name in ("mixup", "label_smoothing"):
        if info.targets and getattr(config, name):
            raise MerError(f"{flag(name)} is for classification data sets (this one is {info.task}); drop it")
    return monitor


def _learner(data_dir: Path, config: TrainConfig, run_dir: Path):
    """DataLoaders + learner in the requested mode, seeded."""
    from fastai.torch_core import set_seed

    info = read_info(data_dir)
    scale = [info.scale[name] for name in info.targets] if info.is_regression else None
    moods = info.targets if info.is_multilabel else None
    set_seed(config.seed, reproducible=True)
    spec = get_arch(config.arch)
    spectrogram = read_spec(data_dir)
    check_spectrogram(spec, spectrogram, str(data_dir))
    common = {
        "size": spectrogram.native_size if spec.spectrogram else config.input_size(spec),
        "bs": config.bs,
        "stats": training_stats(data_dir, config.extra_train_dirs) if config.norm == "dataset" else spec.stats,
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
    learn = build_learner(
        dls, spec, config.weights, run_dir, config.train_bn, scale, config.loss, moods, config.label_smoothing
    )
    set_mode(learn, config.mode, config.train_bn)
    if config.channels_last:
        learn.model.to(memory_format=torch.channels_last)
    return learn


def _fitter(learn, config: TrainConfig):
    """The learner to run lr_find and fit on: a head learner on cached features where that is exact."""
    if config.feature_cache and not config.mixup and can_cache(learn, config.mode, config.train_bn, config.augment):
        return head_learner(learn)
    return learn


def _lr_find(learn, run_dir: Path) -> LRFindResult:
    """fastai's LR range test; the valley suggestion is the one used by `--lr auto`."""
    from fastai.callback.schedule import minimum, steep, valley

    with learn.no_logging():
        found = learn.lr_find(suggest_funcs=(valley, minimum, steep), show_plot=False)
    suggestions = {name: float(value) for name, value in zip(("valley", "minimum", "steep"), found)}
    plot = _plot_lr_find(run_dir / LR_PLOT, learn.recorder, suggestions)
    write_json(run_dir / LR_JSON, {"suggestions": suggestions})
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
    return save_figure(fig, path, dpi=120)


@contextmanager
def results_folder(out: Path, owned: tuple[str, ...]) -> Iterator[Path]:
    """The folder a command writes into: a staging folder inside the locked output folder `out`.

    On success its files replace those in `out` (the `owned` files an earlier run left there and this
    one did not write are removed); on any failure, Ctrl-C included, it is removed, so an earlier run
    in `out` stays as it was and a folder created here is not left behind. In a distributed training
    only the main process creates, locks and fills `out`; the others get the same staging path.
    """
    stage = out / STAGING
    if not is_main_process():
        yield stage
        return
    with output_folder(out, "--out"):
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
    (out / METRICS_FILE).unlink(missing_ok=True)
    files = sorted((p for p in stage.iterdir() if p.is_file()), key=lambda p: p.name == METRICS_FILE)
    for name in set(owned) - {p.name for p in files}:
        (out / name).unlink(missing_ok=True)
    for path in files:
        path.replace(out / path.name)


@tracked
def find_lr(data_dir: str | Path, config: TrainConfig, out: str | Path) -> LRFindResult:
    """Run the LR range test for `config` and save `lr_find.png` and `lr_find.json` in `out`."""
    data_dir, out = Path(data_dir), Path(out)
    config.check()
    with reading(data_dir):
        task_monitor(config, check_dataset(data_dir)[0])
        with results_folder(out, LR_FILES) as stage:
            learn = _learner(data_dir, config, stage)
            try:
                found = _lr_find(_fitter(learn, config), stage)
            finally:
                shutil.rmtree(stage / "models", ignore_errors=True)
    return LRFindResult(found.suggestion, found.suggestions, out / LR_PLOT)


@tracked
def train(data_dir: str | Path, config: TrainConfig, out: str | Path, show: bool = True) -> TrainResult:
    """Check the data set, find the LR if asked, fit one cycle, keep the best or last epoch (`config.keep`),
    write the report and model.

    Nothing is written unless the data set matches its manifest; the run folder receives its files only
    when the run has finished (see `results_folder`); then `report.html` is written beside them.

    metrics.json layout: the validation scores at the top level (window `accuracy`, `macro_f1`,
    `per_class`, `confusion_matrix`, ...; `track_accuracy`, `track_macro_f1` and the `track` block:
    the clips' windows combined by `config.aggregate`), the same scores again as the `valid` block, and
    `test`: the same layout for the test split (the data set's own, or `--test DATA_DIR`), scored once
    with the final model, or null without one; then the run's settings, timings and `versions`.
    """
    data_dir, run_dir = Path(data_dir), Path(out)
    config.check()
    with reading(data_dir, config.test_dir):
        info, rows = check_dataset(data_dir)
        task_monitor(config, info)
        test = held_out_split(data_dir, info, rows, config.test_dir)
        init_distributed()
        if is_main_process() and not info.targets:
            _warn_unvalidated(classes_without_validation(rows, info.classes))
        splits = Splits(info, Split(data_dir, [row for row in rows if row.split == "valid"]), test)
        scatters = tuple(prefix + scatter_file(name) for name in info.scale for prefix in ("", TEST_PREFIX))
        with results_folder(run_dir, RUN_FILES + LR_FILES + scatters) as stage:
            result = _fit(data_dir, config, splits, stage)
    if is_main_process():
        if show:
            kept = f"{config.keep} epoch {result.metrics['kept_epoch'] + 1}"
            title = f"{_title(config, info)} — {kept}, lr {result.lr:.2e}"
            table = {"regression": regression_table, "multilabel": multilabel_table}.get(info.task, summary_table)
            console.print(table(result.metrics, title))
            console.print(f"run folder: [bold]{run_dir}")
        write_html_report(run_dir, show)
    return TrainResult(run_dir, result.lr, result.metrics)


def write_html_report(folder: Path, show: bool = True) -> Path | None:
    """`report.html` of a finished run or grid folder; a failure is a warning line, never a lost result."""
    from ..report.html.page import write_report

    try:
        report = write_report(folder)
    except (MerError, OSError) as exc:
        console.print(f"[yellow]warning:[/] the HTML report could not be written: {exc}", soft_wrap=True)
        return None
    if show:
        console.print(f"report: [bold]{report}")
    return report


def held_out_split(data_dir: Path, info: DatasetInfo, rows: list[ManifestRow], test_dir: str | None) -> Split | None:
    """What the final model is scored on once: `--test DATA_DIR` (every image of another prepared data set
    with the same classes and spectrogram settings and no clip of this one), else the data set's own test
    split, else nothing."""
    own = [row for row in rows if row.split == "test"]
    if test_dir is None:
        return Split(data_dir, own) if own else None
    other = Path(test_dir)
    if own:
        raise MerError(f"--test {other}: {data_dir} has its own test split; drop --test or prepare without --test-pct")
    if other.resolve() == data_dir.resolve():
        raise MerError(f"--test {other}: is the training data set itself; pass another prepared data set")
    other_info, other_rows = check_dataset(other)
    if info.targets and (other_info.targets, other_info.scale) != (info.targets, info.scale):
        raise MerError(
            f"--test {other}: its targets ({', '.join(other_info.targets) or 'none'}, scale {other_info.scale}) "
            f"differ from the training data set's ({', '.join(info.targets)}, {info.scale}); prepare it with the same "
            "--target and labels"
        )
    if not info.targets and other_info.classes != info.classes:
        raise MerError(
            f"--test {other}: its classes ({', '.join(other_info.classes)}) differ from the training data set's "
            f"({', '.join(info.classes)}); prepare it with the same --feature and labels"
        )
    if read_spec(other).digest() != read_spec(data_dir).digest():
        raise MerError(f"--test {other}: made with other spectrogram settings; prepare it with those of {data_dir}")
    shared = sorted({row.source for row in other_rows} & {row.source for row in rows})
    if shared:
        raise MerError(
            f"--test {other}: {len(shared)} clip(s) are also in {data_dir}, e.g. {shared[0]}; a test set must "
            "hold other clips"
        )
    return Split(other, other_rows)


def _warn_unvalidated(classes: list[str]) -> None:
    if classes:
        console.print(
            f"[yellow]warning:[/] class(es) {', '.join(classes)} have training images but none in validation; "
            "their recall cannot be measured (support 0 in metrics.json, left out of macro-F1 unless predicted)",
            soft_wrap=True,
            highlight=False,
        )


def _title(config: TrainConfig, info: DatasetInfo) -> str:
    return f"{config.arch} · {config.mode} · {info.feature}"


def _fit(data_dir: Path, config: TrainConfig, splits: Splits, run_dir: Path) -> TrainResult:
    """Train in `run_dir` and (main process) score the test split and write the report and model there."""
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback

    started = time.time()
    info, valid, test = splits.info, splits.valid, splits.test
    monitor = task_monitor(config, info)
    learn = _learner(data_dir, config, run_dir)
    fitter = _fitter(learn, config)
    auto = config.lr == "auto"
    with images_read(data_dir):
        lr = main_process_value(lambda: _lr_find(fitter, run_dir).suggestion) if auto else float(config.lr)
    timer = EpochTimer()
    callbacks = [timer, *epoch_callbacks()]
    if config.keep == "best":  # else the weights of the last epoch stay
        callbacks.insert(0, SaveModelCallback(monitor=monitor, fname="best", with_opt=False))
    if config.patience:
        callbacks.append(EarlyStoppingCallback(monitor=monitor, patience=config.patience))
    if config.mixup:
        from fastai.callback.mixup import MixUp

        callbacks.append(MixUp(config.mixup))
    try:
        with images_read(data_dir), distributed_fit(fitter):
            fitter.fit_one_cycle(config.epochs, lr, cbs=callbacks)
        history = [{**row, "seconds": round(s, 3)} for row, s in zip(_history(fitter), timer.seconds, strict=True)]
        with images_read(data_dir):
            probs, targets = fitter.get_preds(ds_idx=1)
    finally:
        shutil.rmtree(run_dir / "models", ignore_errors=True)
    if len(probs) != len(valid.rows):
        raise MerError(f"{data_dir}: {len(probs)} validation predictions for {len(valid.rows)} manifest rows; {REPAIR}")
    probs = probs.float().numpy()
    if info.targets:
        classes = list(info.targets)
        scores, tracks = _score_values(info, probs, targets.numpy(), valid.clip_ids)
    else:
        classes = list(learn.dls.vocab)
        scores, tracks = score_windows(probs, targets.numpy(), valid.clip_ids, classes, config.aggregate)
    metrics = {**scores, "valid": scores, "test": None}
    best = _best_epoch(history, monitor)
    metrics.update(
        arch=config.arch,
        mode=config.mode,
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
        size=config.input_size(),
        seed=config.seed,
        data_dir=str(data_dir),
        cached_features=fitter is not learn,
        seconds=round(time.time() - started, 2),
        versions=_versions(),
    )
    if is_main_process() and info.targets:
        _finish_values(run_dir, learn, config, info, splits, (probs, tracks), history, lr, metrics, started)
    elif is_main_process():  # one process of a distributed training: rank 0 writes
        title = _title(config, info)
        meta = model_metadata(learn, config, info, data_dir, metrics)
        save_model_file(run_dir / MODEL_FILE, learn.model, meta)
        _write_scores(run_dir, "", valid, probs, tracks, scores, title)
        if test is not None:  # scored once, with the final model
            test_probs = window_probabilities(learn.model, meta, test)
            metrics["test"], test_tracks = score_windows(
                test_probs, _targets(test, classes), test.clip_ids, classes, config.aggregate
            )
            metrics["test"].update(data_dir=str(test.data_dir))
            _write_scores(run_dir, TEST_PREFIX, test, test_probs, test_tracks, metrics["test"], f"{title} — test")
        metrics["seconds"] = round(time.time() - started, 2)
        write_json(run_dir / RUN_CONFIG, {"data_dir": str(data_dir), **config.to_dict(), "lr": lr})
        write_json(run_dir / "history.json", {"history": history})
        atomic_write(run_dir / REPORT_FILE, _text_reports(targets.numpy(), probs, tracks, classes))
        plot_confusion(run_dir / CONFUSION_FILE, metrics["confusion_matrix"], classes, f"{title} — windows")
        plot_curves(run_dir / CURVES_FILE, history, title)
        write_json(run_dir / METRICS_FILE, metrics)
    return TrainResult(run_dir, lr, metrics)


def _score_values(info: DatasetInfo, outputs: np.ndarray, truth: np.ndarray, clip_ids: list[str]):
    """Scores and tracks of a regression (values) or multilabel (mood probabilities) split."""
    if info.is_multilabel:
        return score_multilabel(outputs, truth, clip_ids, list(info.targets), MOOD_DECISION)
    return score_regression(outputs, truth, clip_ids, list(info.targets))


def _finish_values(
    run_dir: Path,
    learn,
    config: TrainConfig,
    info: DatasetInfo,
    splits: Splits,
    scored: tuple[np.ndarray, ValueTracks],
    history: list[dict],
    lr: float,
    metrics: dict,
    started: float,
) -> None:
    """A regression or multilabel run's files: model, predictions and plots of validation (and test), config,
    history, metrics.json last."""
    title = _title(config, info)
    meta = model_metadata(learn, config, info, splits.valid.data_dir, metrics)
    save_model_file(run_dir / MODEL_FILE, learn.model, meta)
    _write_values(run_dir, "", splits.valid, *scored, info, title)
    test = splits.test
    if test is not None:  # scored once, with the final model
        outputs = window_outputs(learn.model, meta, test)
        if info.is_multilabel:
            outputs = 1 / (1 + np.exp(-outputs))  # mood probabilities, as get_preds gives them
        truth = np.array([row.values for row in test.rows], dtype=np.float64)
        metrics["test"], test_tracks = _score_values(info, outputs, truth, test.clip_ids)
        metrics["test"].update(data_dir=str(test.data_dir))
        _write_values(run_dir, TEST_PREFIX, test, outputs, test_tracks, info, f"{title} — test")
    metrics["seconds"] = round(time.time() - started, 2)
    write_json(run_dir / RUN_CONFIG, {"data_dir": str(splits.valid.data_dir), **config.to_dict(), "lr": lr})
    write_json(run_dir / "history.json", {"history": history})
    plot_curves(run_dir / CURVES_FILE, history, title)
    write_json(run_dir / METRICS_FILE, metrics)


def _write_values(
    run_dir: Path, prefix: str, split: Split, outputs: np.ndarray, tracks: ValueTracks, info: DatasetInfo, title: str
) -> None:
    """A regression split's window and track predictions, a scatter per target and (valence with arousal or
    energy) the circumplex, all of tracks; a multilabel split's predictions and per-mood bar chart (windows);
    `prefix` "" or "test_"."""
    targets = list(info.targets)
    write_predictions(run_dir, prefix, split.rows, outputs, tracks, targets, info.task)
    if info.is_multilabel:
        scores = _score_values(info, outputs, np.array([row.values for row in split.rows]), split.clip_ids)[0]
        plot_label_bars(run_dir / (prefix + LABELS_FILE), scores["per_label"], f"{title} — windows")
        return
    what = f"{title} — {len(tracks.ids)} tracks (mean of windows)"
    plot_value_tracks(run_dir, prefix, tracks.predicted, tracks.targets, targets, info.scale, what)


def _text_reports(targets: np.ndarray, probs: np.ndarray, tracks: Tracks, classes: list[str]) -> str:
    """classification_report.txt: the validation windows' report, then the tracks'."""
    windows = text_report(targets, probs.argmax(axis=1), classes)
    return f"windows\n\n{windows}\ntracks\n\n{text_report(tracks.targets, tracks.predicted, classes)}"


def _versions() -> dict[str, str]:
    import fastai

    return {"mer-fastai": __version__, "torch": torch.__version__, "fastai": fastai.__version__}


def _targets(split: Split, classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[row.label] for row in split.rows], dtype=np.int64)


def window_probabilities(model, meta: ModelMeta, split: Split) -> np.ndarray:
    """Class probabilities (n_windows, n_classes) of a split's images (see `window_outputs`)."""
    return torch.softmax(torch.from_numpy(window_outputs(model, meta, split)), dim=1).numpy().astype(np.float64)


def window_outputs(model, meta: ModelMeta, split: Split, chunk: int = 512) -> np.ndarray:
    """Raw model outputs (n_windows, n_outputs) of a split's images, fed exactly as `predict` feeds windows
    (the validation transform of training)."""
    from PIL import Image

    from ..data.png import read_png16
    from ..inference.predict import Predictor

    device = next(model.parameters()).device
    predictor = Predictor(model, meta, device=str(device), bs=64)
    outputs = []
    for start in range(0, len(split.rows), chunk):
        images = []
        for row in split.rows[start : start + chunk]:
            if meta.spec.bit_depth == 16:  # PIL's RGB conversion would clip them to 8 bits
                images.append(read_png16(row.path(split.data_dir)))
                continue
            with Image.open(row.path(split.data_dir)) as image:
                images.append(np.asarray(image if image.mode == "L" else image.convert("RGB")))
        outputs.append(predictor.logits(images).numpy())
    return np.concatenate(outputs).astype(np.float64)


def _write_scores(
    run_dir: Path, prefix: str, split: Split, probs: np.ndarray, tracks: Tracks, scores: dict, title: str
) -> None:
    """A split's window and track predictions and its track confusion matrix (`prefix` "" or "test_")."""
    classes = scores["classes"]
    write_predictions(run_dir, prefix, split.rows, probs, tracks, classes, "classification")
    what = f"{scores['n_tracks']} tracks ({scores['aggregate']} of windows)"
    plot_confusion(run_dir / (prefix + TRACK_CONFUSION_FILE), scores["track"]["confusion_matrix"], classes,
                   f"{title} — {what}")  # fmt: skip


def model_metadata(learn, config: TrainConfig, info: DatasetInfo, data_dir: Path, metrics: dict) -> ModelMeta:
    """What a model file must say to be rebuilt and fed exactly like in training."""
    spec = get_arch(config.arch)
    if info.targets:
        return ModelMeta(
            arch=config.arch,
            classes=tuple(info.targets),
            feature=info.feature,
            spec=read_spec(data_dir),
            stats=input_stats(learn.dls),
            input_size=config.input_size(spec),
            mode=config.mode,
            resize=resize_policy(config.augment),
            package_version=__version__,
            metrics={key: metrics[key] for key in ("ccc", "rmse", "macro_f1", "map") if key in metrics},
            task=info.task,
            scale=tuple(tuple(info.scale[name]) for name in info.targets) if info.is_regression else (),
        )
    cuts = info.settings.get("cuts")  # rating cut points of 3-level features
    return ModelMeta(
        arch=config.arch,
        classes=tuple(learn.dls.vocab),
        feature=info.feature,
        spec=read_spec(data_dir),
        stats=input_stats(learn.dls),
        input_size=config.input_size(spec),
        mode=config.mode,
        resize=resize_policy(config.augment),  # fastai's validation transform
        cuts=tuple(cuts) if cuts is not None else None,
        package_version=__version__,
        metrics={"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]},
    )


def input_stats(dls) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) per channel that the loaders' `Normalize` applies: what the model was trained on."""
    normalize = next(t for t in dls.after_batch.fs if type(t).__name__ == "Normalize")
    # rounded to float32's precision, so that the table's statistics read back as written (0.485, not 0.48500001)
    return tuple(tuple(round(v, 7) for v in t.flatten().tolist()) for t in (normalize.mean, normalize.std))


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
