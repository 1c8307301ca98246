"""The cross-validation page: the folds' summary, the pooled out-of-fold errors and every fold's run section.

The folder layout is `runs.layout`'s (cv.json, folds/<k>/, oof_predictions.csv, oof_track_predictions.csv).
"""

from __future__ import annotations

from pathlib import Path

from ...runs.layout import CV_FILE, OOF_PREDICTIONS, OOF_TRACKS, REFIT_DIR, fold_dirs, is_finished, read_json
from ...tasks.base import Task
from ..results import row_task
from .dataset import Datasets, find_data_dir
from .predictions import no_predictions, read_predictions, window_mistakes, worst_tracks
from .run import run_section, task_plots
from .scores import confusion_tables
from .templating import data_uri
from .values import score_text, setting_text, slug


def cv_page(folder: Path, here: Path, datasets: Datasets) -> dict:
    """The page of a cross-validation folder: its summary, out-of-fold errors and folds."""
    summary = read_json(folder / CV_FILE)
    folds = finished_folds(folder)
    runs = [run_section(p, here, f"fold-{slug(p.name)}", datasets) for p in folds]
    refit = folder / (summary.get("refit") or {}).get("folder", REFIT_DIR)
    if summary.get("refit") and is_finished(refit):  # the model on every clip: its section says it has no scores
        runs.append({**run_section(refit, here, "refit", datasets), "title": "refit model (every clip)"})
    task = row_task(summary)
    cv = {
        "folds": [{"name": p.name, "anchor": run["anchor"]} for p, run in zip(folds, runs)],
        "task": None if task.is_default else str(task),  # named in the heading unless it is the default
        "summary": cv_summary(summary.get("summary", {}), len(folds)),
        "settings": [(k, setting_text(v)) for k, v in summary.get("config", {}).items()],
        "models": [(name, str(what)) for name, what in (summary.get("models") or {}).items()],
        **out_of_fold(folder, task, summary, find_data_dir(summary.get("data_dir"), folder), here),
    }
    return {"title": f"Cross-validation {folder.resolve().name}", "runs": runs, "datasets": datasets, "cv": cv}


def finished_folds(folder: Path) -> list[Path]:
    """The finished fold run folders of a cross-validation folder, in fold order."""
    return [p for p in fold_dirs(folder) if is_finished(p)]


def fold_sections(folder: Path, here: Path, anchor: str, datasets: dict) -> list[dict]:
    """The run sections of a cross-validated grid cell's folds; the first carries the cell's anchor."""
    sections = []
    for index, fold_dir in enumerate(finished_folds(folder)):
        section = run_section(fold_dir, here, anchor if index == 0 else f"{anchor}-fold-{slug(fold_dir.name)}",
                              datasets)  # fmt: skip
        sections.append({**section, "title": f"{folder.name} · fold {section['title']}"})
    return sections


def cv_summary(summary: dict, n_folds: int) -> list[dict]:
    """Each score's mean ± sd and per-fold values."""
    rows = []
    for name, values in summary.items():
        if not isinstance(values, dict) or "mean" not in values:
            continue
        folds = [score_text(v) for v in values.get("values", [])]
        rows.append(
            {
                "name": name.replace("_", " "),
                "mean_sd": f"{score_text(values['mean'])} ± {score_text(values.get('sd'))}",
                "per_fold": (folds + [""] * n_folds)[:n_folds],
            }
        )
    return rows


def out_of_fold(folder: Path, task: Task, summary: dict, data_dir: Path | None, here: Path) -> dict:
    """The pooled out-of-fold errors, as `task.facts.report_errors` says: a confusion matrix and the worst windows,
    or the pooled plots and the worst tracks."""
    if task.facts.report_errors == "mistakes":
        return {"errors": "mistakes", **_oof_mistakes(folder / OOF_PREDICTIONS, data_dir, here)}
    names = summary.get(task.facts.names_key) or summary.get("targets", [])  # cv.json lists moods as `targets` too
    plots = [{"src": data_uri(folder / name), "caption": f"out of fold: {caption}"} for name, caption in
             task_plots(task, names)]  # fmt: skip
    worst = worst_tracks(folder, task, names, data_dir, here, (OOF_TRACKS, OOF_PREDICTIONS))
    return {"errors": "worst_tracks", "figures": [plot for plot in plots if plot["src"]], "worst": worst}


def _oof_mistakes(path: Path, data_dir: Path | None, here: Path) -> dict:
    """Pooled out-of-fold confusion matrix and worst mistakes, or a plain note when the file is absent."""
    if not path.is_file():
        return {"confusion": None, "mistakes": no_predictions(f"No {OOF_PREDICTIONS} in the folder.")}
    classes, rows = read_predictions(path)
    index = {name: i for i, name in enumerate(classes)}
    counts = [[0] * len(classes) for _ in classes]
    for row in rows:
        if row["true"] in index and row["predicted"] in index:
            counts[index[row["true"]]][index[row["predicted"]]] += 1
    return {
        "confusion": confusion_tables(counts, classes),
        "mistakes": {**no_predictions(None), **window_mistakes(classes, rows, data_dir, here)},
    }
