"""Runs tracked in MLflow (`--track mlflow`): settings, per-epoch scores, plots and the model file.

One MLflow run per `train`, `lrfind` or grid cell (a cross-validated cell: one per fold), in the
experiment named after the data set's feature (a grid: the recipe's experiment). A finished run logs its
task's scores (`TaskFacts.scores`) of the validation windows as `final_<score>`, of its tracks as `track_<score>`
and, with a test split, `test_<score>` and `test_track_<score>`: e.g. `final_accuracy`, `track_macro_f1`,
`final_ccc`, `test_track_map`.
The default store is `./mlruns`: the SQLite database
`mlruns/mlflow.db` with the files under `mlruns/artifacts` (MLflow 3 refuses its plain-folder store).
`--tracking-uri` (or MLFLOW_TRACKING_URI) points elsewhere, e.g. `http://HOST:5000`.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from fastai.callback.core import Callback

from .._plumbing.locks import reading
from ..bounds import quote
from ..errors import MerError
from ..runs.layout import LR_JSON, is_finished, read_json, read_metrics
from ..tasks.opened import Dataset, as_dataset, dataset_folder
from ..tasks.registry import get_task
from .config import TrainConfig, TrainSettings, checked
from .distributed import is_main_process

TRACKERS = ("mlflow",)
STORE_DIR = "mlruns"
TRACKING_FIELDS = ("track", "tracking_uri", "tracking_experiment")
INSTALL_HINT = "MLflow is not installed; pip install 'mer-fastai[mlflow]'"


def _mlflow_client(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc
    return MlflowClient(uri)


def check_track(track: str | None) -> None:
    """A one-line error for an unknown tracker or a missing MLflow, before any training starts."""
    if track is None:
        return
    if track not in TRACKERS:
        raise MerError(f"unknown --track {quote(track)}; choose {', '.join(TRACKERS)}")
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise MerError(INSTALL_HINT) from exc


def resolve_uri(uri: str | None) -> str:
    """`uri`, else $MLFLOW_TRACKING_URI, else the local store ./mlruns as an absolute SQLite URI."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = Path(STORE_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def experiment_id(client, name: str) -> str:
    """The id of experiment `name`, created on first use (a SQLite store keeps files beside the database)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if client.tracking_uri.startswith("sqlite:///"):
        location = (Path(client.tracking_uri[len("sqlite:///") :]).resolve().parent / "artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created meanwhile by a cell running in parallel
        return client.get_experiment_by_name(name).experiment_id


def tracking_settings(track: str | None, uri: str | None, experiment: str) -> dict:
    """TrainConfig fields that make each grid cell a run of `experiment` (created here, before cells run)."""
    if track is None:
        return {}
    check_track(track)
    uri = resolve_uri(uri)
    experiment_id(_mlflow_client(uri), experiment)
    return {"track": track, "tracking_uri": uri, "tracking_experiment": experiment}


def run_params(config: TrainConfig, dataset: Dataset) -> dict[str, str]:
    """The settings of a run and a summary of its data set, as MLflow parameters."""
    info = dataset.info
    counts = info.counts
    params: dict[str, Any] = {k: v for k, v in config.to_dict().items() if k not in TRACKING_FIELDS}
    params.update({
        "data.dir": str(dataset.path.resolve()),
        "data.feature": info.feature,
        "data.classes": info.classes,
        "data.task": info.task,
        "data.targets": info.targets,
        "data.clips": info.clips,
        "data.train_images": sum(counts.get("train", {}).values()),
        "data.valid_images": sum(counts.get("valid", {}).values()),
        "data.spectrogram": info.settings.get("spectrogram"),
    })  # fmt: skip
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()}


def _metrics(values: dict[str, float], step: int = 0) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in values.items() if value is not None]


def _params(values: dict[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in values.items()]


class MLflowEpochLogger(Callback):
    """Logs every epoch's losses and scores (train_loss, valid_loss, accuracy, macro_f1) to an MLflow run."""

    order = 51  # after the Recorder (50) has stored the epoch's values

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    def after_epoch(self) -> None:
        names = [n for n in self.recorder.metric_names if n not in ("epoch", "time")]
        values = dict(zip(names, self.recorder.values[-1], strict=True))
        self.client.log_batch(self.run_id, metrics=_metrics(values, step=self.epoch))


def log_run_folder(client, run_id: str, run_dir: Path) -> None:
    """A finished run folder into an MLflow run: its results as metrics, each of its files as an artifact."""
    values: dict[str, float] = {}
    if is_finished(run_dir):
        metrics = read_metrics(run_dir)
        values.update({key: metrics[key] for key in ("lr", "best_epoch", "kept_epoch", "seconds") if key in metrics})
        values.update(final_scores(metrics))
    if (run_dir / LR_JSON).exists():
        suggestions = read_json(run_dir / LR_JSON)["suggestions"]
        values.update({f"lr_{name}": value for name, value in suggestions.items()})
    client.log_batch(run_id, metrics=_metrics(values))
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):  # not the folder's lock
            client.log_artifact(run_id, str(path))


def final_scores(metrics: dict, windows_prefix: str = "final_") -> dict[str, float]:
    """The kept model's window (`windows_prefix`) and track scores and, when the run has a test split, its test
    scores (results.csv's names: `track_macro_f1`, `test_accuracy`, `test_track_ccc`, ...); undefined ones are
    left out."""
    keys = get_task(metrics.get("task")).facts.scores
    test = metrics.get("test") or {}
    values = {}
    for windows, tracks, block in ((windows_prefix, "track_", metrics), ("test_", "test_track_", test)):
        values.update({windows + key: block.get(key) for key in keys})
        values.update({tracks + key: (block.get("track") or {}).get(key) for key in keys})
    return {key: value for key, value in values.items() if value is not None}


class TrackedRun:
    """One MLflow run: opened with the settings, fed per epoch, closed with the run folder's files."""

    def __init__(self, config: TrainConfig, dataset: Dataset, out: Path, command: str):
        info = dataset.info
        self.client = _mlflow_client(resolve_uri(config.tracking_uri))
        experiment = experiment_id(self.client, config.tracking_experiment or info.feature)
        tags = {"mer_fastai.command": command, "mer_fastai.run_dir": str(out.resolve()), "arch": config.arch,
                "mode": config.mode}  # fmt: skip
        self.run_id = self.client.create_run(experiment, run_name=out.name, tags=tags).info.run_id
        self.client.log_batch(self.run_id, params=_params(run_params(config, dataset)))

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


_active: ContextVar[TrackedRun | None] = ContextVar("mer_fastai_tracked_run", default=None)


def epoch_callbacks() -> list[Callback]:
    """The per-epoch MLflow logger while a tracked run is open (see `tracked`), else none."""
    run = _active.get()
    return [MLflowEpochLogger(run.client, run.run_id)] if run else []


def tracked(func: Callable) -> Callable:
    """Wrap `train` / `find_lr(data_dir, config, out)`: `config` checked once (the function receives the
    `TrainSettings`), then the data set opened once (the function receives the `Dataset`; a folder is read under
    the readers' lock, `_plumbing.locks.reading`); with its `track`, one MLflow run around the call.

    Only the main process tracks (a distributed training has one run); a failed call ends its run FAILED.
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        given = bound.arguments["config"]
        if is_main_process():  # the tracker first, then the settings
            check_track(given.config.track if isinstance(given, TrainSettings) else given.track)
        bound.arguments["config"] = settings = checked(given)  # the function reads the settings checked here
        with reading(dataset_folder(bound.arguments["data_dir"])):  # not while prepare changes it
            bound.arguments["data_dir"] = as_dataset(bound.arguments["data_dir"])
            return _run(func, bound, settings.config)

    return wrapper


def _run(func: Callable, bound: inspect.BoundArguments, config: TrainConfig):
    """`func` called with its checked arguments; with `config.track` (main process), inside one MLflow run."""
    if not config.track or not is_main_process():
        return func(*bound.args, **bound.kwargs)
    out = Path(bound.arguments["out"])
    run = TrackedRun(config, bound.arguments["data_dir"], out, func.__name__)
    token = _active.set(run)
    try:
        result = func(*bound.args, **bound.kwargs)
        log_run_folder(run.client, run.run_id, out)
    except BaseException as exc:
        run.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        _active.reset(token)
    run.end("FINISHED")
    return result
