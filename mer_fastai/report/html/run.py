"""A run's section of the page: its settings, times, score tables, figures and errors."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ...runs.layout import (
    CURVES_FILE,
    HISTORY_FILE,
    LR_PLOT,
    METRICS_FILE,
    REFIT_KEY,
    TEST_PREFIX,
    read_config,
    read_json,
    read_metrics,
)
from ...tasks.base import Task
from ..results import row_task
from ..views.registry import views_of
from .dataset import dataset_section, find_data_dir
from .predictions import run_mistakes, worst_tracks
from .scores import score_sets
from .templating import data_uri
from .values import setting_text

FIGURES = ((CURVES_FILE, "loss and validation scores per epoch"), (LR_PLOT, "learning-rate finder"))


NO_DATASET = "unknown (no data set recorded)"


def run_section(folder: Path, here: Path, anchor: str, datasets: dict, grid: Path | None = None) -> dict:
    """Everything the page shows about one run folder; its data set is added to `datasets` once."""
    metrics = read_metrics(folder)
    task = row_task(metrics)
    config = read_config(folder)
    history = read_json(folder / HISTORY_FILE).get("history", []) if (folder / HISTORY_FILE).is_file() else []
    data_dir = find_data_dir(config.get("data_dir") or metrics.get("data_dir"), grid)
    dataset = dataset_section(data_dir, config.get("data_dir") or metrics.get("data_dir"), datasets)
    title = " · ".join(str(v) for v in (metrics.get("arch"), metrics.get("mode"), metrics.get("feature")) if v)
    names = list(metrics.get(task.facts.names_key) or [])
    plots = task_plots(task, names, test=bool(metrics.get("test")))
    figures = [{"src": data_uri(folder / name), "caption": caption} for name, caption in FIGURES]
    task_figures = [{"src": data_uri(folder / name), "caption": caption} for name, caption in plots]
    lists_mistakes = task.facts.report_errors == "mistakes"  # else: the worst tracks
    return {
        "anchor": anchor,
        "title": f"{folder.name}: {title}" if grid or anchor != "run" else title,
        "folder": str(folder),
        "folder_path": folder,
        "dataset_anchor": dataset["anchor"] if dataset else None,
        "dataset_name": dataset["name"] if dataset else None,
        "settings": run_settings(
            metrics, config, dataset["spectrogram"] if dataset else "unknown (no data set recorded)"
        ),
        "times": run_times(folder, metrics, history),
        "score_sets": score_sets(task, metrics),
        "refit": metrics.get(REFIT_KEY),  # a refit's run: why it has no validation scores
        "plots_heading": task.facts.plots_heading,
        "task_figures": [f for f in task_figures if f["src"]],
        "figures": [f for f in figures if f["src"]],
        "missing_figures": [
            f"No {name} in the run folder." for name, _ in (*FIGURES, *plots) if not (folder / name).is_file()
        ],
        "mistakes": run_mistakes(folder, data_dir, here) if lists_mistakes else None,
        "worst": None if lists_mistakes else worst_tracks(folder, task, names, data_dir, here),
    }


def task_plots(task: Task, names: list[str], test: bool = False) -> list[tuple[str, str]]:
    """The task's own plots (file, caption) of validation and, with a test split, of test: scatters and
    circumplex of a regression, per-mood bars of a multilabel run; `names`: its targets or moods."""
    plots = views_of(task).plot_files(names)
    return plots + [(TEST_PREFIX + name, f"test split: {caption}") for name, caption in plots] if test else plots


def run_settings(metrics: dict, config: dict, spectrogram: str) -> list[tuple[str, str]]:
    """Data set, spectrogram, architecture, mode, weights, epochs, LR and the other training settings."""
    shown = ("feature", "epochs_run", "keep", "kept_epoch", "best_epoch")
    merged = {**config, **{k: metrics[k] for k in shown if k in metrics}}
    pairs = [("data set", str(config.get("data_dir") or metrics.get("data_dir", "–")))]
    pairs.append(("spectrogram", spectrogram))
    order = ("feature", "arch", "mode", "weights", "epochs", "epochs_run", "keep", "kept_epoch", "best_epoch", "lr")
    order += ("bs", "size")
    order += ("augment", "balanced", "seed", "monitor", "patience")
    for key in order:
        if key in merged or key in metrics:
            value = merged.get(key, metrics.get(key))
            if key in ("kept_epoch", "best_epoch") and isinstance(value, int):
                value += 1  # shown 1-based, as the console does
            pairs.append((key.replace("_", " "), setting_text(value)))
    return pairs


def run_times(folder: Path, metrics: dict, history: list[dict]) -> list[tuple[str, str]]:
    """Total and per-epoch seconds, and when the run finished (metrics.json's time stamp)."""
    pairs = []
    if "seconds" in metrics:
        pairs.append(("total", f"{metrics['seconds']:.1f} s"))
    epochs = [row["seconds"] for row in history if "seconds" in row]
    if epochs:
        pairs.append(("per epoch", f"{statistics.mean(epochs):.1f} s (mean of {len(epochs)})"))
    finished = (folder / METRICS_FILE).stat().st_mtime
    pairs.append(("finished", time.strftime("%Y-%m-%d %H:%M", time.localtime(finished))))
    return pairs
