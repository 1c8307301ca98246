"""`report`: one self-contained, offline HTML page for a run, a cross-validation or a grid folder.

Every figure and spectrogram thumbnail is inlined as a `data:` URI, so the page is one file that opens
offline and can be sent on; audio files are linked relative to the page (they stay where they are).
The page is rendered by the Jinja2 templates in `mer_fastai/report/html/templates/`; sorting the results table is
a small inline script, and everything reads the same with JavaScript off.

Folder kinds (see /work/notes/H8-contract.md for the cross-validation layout):
- run: `metrics.json`, `config.json`, `history.json`, `curves.png`, `lr_find.png`, and optionally
  `valid_predictions.csv` / `track_predictions.csv` (per window / per clip, with `prob_<class>` columns);
  a regression run (`task` in metrics.json) shows per-target scores, `scatter_<target>.png`, `circumplex.png`
  and the tracks with the largest error (`true_<t>`/`pred_<t>` columns); a multilabel run micro/macro-F1,
  mAP, per-mood scores, `per_label.png` and the tracks with the most wrong moods;
- grid: `results.csv`, `results_heatmap.png`, `state.json`, `runs/<cell>/` run folders;
- cross-validation: `cv.json`, `folds/<k>/` run folders, `oof_predictions.csv` (a classification's pooled
  confusion matrix and worst windows), `oof_track_predictions.csv` and the pooled plots (a regression's or
  multilabel's worst tracks, scatters and circumplex, or per-mood bars).
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

from ... import __version__
from ..._plumbing.files import atomic_write, check_output_file, reading
from ...errors import MerError
from ..results import SCORE_LABELS, SD_SUFFIX, is_score_column, main_score, row_task

REPORT_HTML = "report.html"
VALID_PREDICTIONS = "valid_predictions.csv"
TRACK_PREDICTIONS = "track_predictions.csv"
OOF_PREDICTIONS = "oof_predictions.csv"
OOF_TRACKS = "oof_track_predictions.csv"
CV_FILE = "cv.json"
WORST = 12  # mistakes shown per table
IDENTITY_COLUMNS = ("experiment", "stage", "dataset", "feature", "arch", "mode", "weights", "augmentation")
NUMBER_COLUMNS = ("epochs", "lr", "seconds", "folds")
FIGURES = (("curves.png", "loss and validation scores per epoch"), ("lr_find.png", "learning-rate finder"))


def write_report(path_in: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run, cross-validation or grid folder; returns its path.

    `out` defaults to `<folder>/report.html`. Refuses a folder that is none of the three kinds.
    """
    folder = Path(path_in)
    out = check_output_file(Path(out) if out is not None else folder / REPORT_HTML, "--out")
    builders = {"run": run_page, "grid": grid_page, "cv": cv_page}
    page = builders[folder_kind(folder)](folder, out.parent.resolve())
    return atomic_write(out, render("report.html.j2", page["title"], str(folder), page=page))


def folder_kind(folder: Path) -> str:
    """'run', 'grid' or 'cv', from the files the folder holds."""
    if not folder.is_dir():
        raise MerError(f"{folder}: no such folder; pass a run, cross-validation or grid folder")
    if (folder / CV_FILE).is_file():
        return "cv"
    if (folder / "results.csv").is_file():
        return "grid"
    if (folder / "metrics.json").is_file():
        return "run"
    raise MerError(
        f"{folder}: holds no metrics.json, results.csv or {CV_FILE}; pass a folder made by "
        "`mer-fastai train`, `cv` or `run` (a training that did not finish leaves no metrics.json)"
    )


def render(template: str, title: str, source: str, **values) -> str:
    """HTML text of one of the package's templates."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("mer_fastai.report.html", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(template).render(
        title=title,
        source=source,
        generated=time.strftime("%Y-%m-%d %H:%M"),
        generator_version=__version__,
        **values,
    )


def data_uri(path: Path) -> str | None:
    """The file as a `data:` URI (PNG or JPEG), or None when it is missing."""
    if not path.is_file():
        return None
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def read_json(path: Path) -> dict:
    """A JSON file of a result folder; a damaged one is one clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MerError(f"{path}: cannot be read ({exc}); rerun the command that wrote it") from exc


# ---------------------------------------------------------------- pages


def run_page(folder: Path, here: Path) -> dict:
    """The page of one run folder."""
    datasets: dict[str, dict] = {}
    run = run_section(folder, here, "run", datasets)
    return _page(f"Run {run['title']}", folder, [run], datasets, grid=None, cv=None)


def grid_page(folder: Path, here: Path) -> dict:
    """The page of a grid folder: the results table, heatmap, failed cells, every cell's run section (a
    cross-validated cell: each fold's)."""
    from ..results import load_results

    rows = load_results(folder)
    datasets: dict[str, dict] = {}
    runs, anchors = [], {}
    for row in rows:
        run_dir = _run_folder(folder, row.get("run_dir", ""))
        if run_dir is None or str(run_dir) in anchors:
            continue
        anchors[str(run_dir)] = f"cell-{_slug(run_dir.name)}"
        if (run_dir / CV_FILE).is_file():
            runs += _fold_sections(run_dir, here, anchors[str(run_dir)], datasets)
        else:
            runs.append(run_section(run_dir, here, anchors[str(run_dir)], datasets, grid=folder))
    heatmap = data_uri(folder / "results_heatmap.png")
    grid = {
        **results_table(rows, lambda row: anchors.get(str(_run_folder(folder, row.get("run_dir", ""))))),
        "heatmap": {"src": heatmap, "caption": f"validation {_heatmap_score(rows)} per cell"} if heatmap else None,
        "failed": _failed_cells(folder),
    }
    return _page(f"Grid {folder.resolve().name}", folder, runs, datasets, grid=grid, cv=None)


def _heatmap_score(rows: list[dict]) -> str:
    """What the grid's heatmap shows: its task's main score (accuracy, CCC, macro-F1)."""
    tasks = {row_task(row) for row in rows}
    return SCORE_LABELS[main_score(tasks.pop())] if len(tasks) == 1 else "main score (accuracy, CCC or macro-F1)"


def cv_page(folder: Path, here: Path) -> dict:
    """The page of a cross-validation folder (layout: /work/notes/H8-contract.md)."""
    summary = read_json(folder / CV_FILE)
    datasets: dict[str, dict] = {}
    fold_dirs = _fold_dirs(folder)
    runs = [run_section(p, here, f"fold-{_slug(p.name)}", datasets) for p in fold_dirs]
    folds = [{"name": p.name, "anchor": run["anchor"]} for p, run in zip(fold_dirs, runs)]
    data_dir = _data_dir(summary.get("data_dir"), folder)
    task = summary.get("task", "classification")
    cv = {
        "folds": folds,
        "task": task,
        "summary": _cv_summary(summary.get("summary", {}), len(folds)),
        "settings": [(k, _text(v)) for k, v in summary.get("config", {}).items()],
        **(_oof(folder / OOF_PREDICTIONS, data_dir, here) if task == "classification" else
           _oof_values(folder, task, summary.get("targets", []), data_dir, here)),
    }  # fmt: skip
    return _page(f"Cross-validation {folder.resolve().name}", folder, runs, datasets, grid=None, cv=cv)


def _fold_dirs(folder: Path) -> list[Path]:
    """The finished fold run folders of a cross-validation folder, in fold order."""
    return sorted((p for p in (folder / "folds").glob("*") if (p / "metrics.json").is_file()), key=_natural)


def _fold_sections(folder: Path, here: Path, anchor: str, datasets: dict) -> list[dict]:
    """The run sections of a cross-validated grid cell's folds; the first carries the cell's anchor."""
    sections = []
    for index, fold_dir in enumerate(_fold_dirs(folder)):
        section = run_section(fold_dir, here, anchor if index == 0 else f"{anchor}-fold-{_slug(fold_dir.name)}",
                              datasets)  # fmt: skip
        sections.append({**section, "title": f"{folder.name} · fold {section['title']}"})
    return sections


def _page(title: str, folder: Path, runs: list[dict], datasets: dict, *, grid, cv) -> dict:
    return {
        "title": title,
        "runs": runs,
        "datasets": list(datasets.values()),
        "grid": grid,
        "cv": cv,
        "versions": versions(runs[0]["folder_path"] if runs else folder),
    }


# ---------------------------------------------------------------- grid table


def results_table(rows: list[dict], anchor_of) -> dict:
    """Columns and cells of the grid's results table: identity, score (± sd) and other number columns."""
    names = list(rows[0]) if rows else []
    present = [c for c in IDENTITY_COLUMNS if c in names and any(r.get(c) for r in rows)]
    shared = [c for c in present if len(rows) > 1 and len({r.get(c) for r in rows}) == 1]
    identity = [c for c in present if c not in shared]
    scores = [c for c in names if is_score_column(c) and not c.endswith(SD_SUFFIX)]
    numbers = [c for c in NUMBER_COLUMNS if c in names]
    columns = [{"name": "cell", "numeric": False}]
    columns += [{"name": c, "numeric": False} for c in identity]
    columns += [{"name": c.replace("_", " "), "numeric": True} for c in scores + numbers]
    table_rows = []
    for row in rows:
        cells = [_cell(Path(row.get("run_dir") or "-").name, None)]
        cells += [_cell(row.get(c, ""), None) for c in identity]
        cells += [_score_cell(row.get(c, ""), row.get(c + SD_SUFFIX)) for c in scores]
        cells += [_cell(row.get(c, ""), _number(row.get(c, ""))) for c in numbers]
        table_rows.append({"cells": cells, "anchor": anchor_of(row)})
    return {
        "columns": columns,
        "rows": table_rows,
        "sd_columns": [c for c in scores if c + SD_SUFFIX in names],
        "shared": [(c, rows[0][c]) for c in shared],
    }


def _cell(text: str, number: float | None) -> dict:
    return {"text": text, "sort": "" if number is None else repr(number), "numeric": number is not None}


def _score_cell(value: str, sd: str | None) -> dict:
    number = _number(value)
    if number is None:
        return _cell(value or "–", None) | {"numeric": True}
    spread = _number(sd or "")
    text = f"{number:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
    return {"text": text, "sort": repr(number), "numeric": True}


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _failed_cells(folder: Path) -> list[tuple[str, str]]:
    path = folder / "state.json"
    if not path.is_file():
        return []
    cells = read_json(path).get("cells", {})
    return [(name, entry.get("error", "")) for name, entry in cells.items() if entry.get("status") == "failed"]


def _run_folder(grid: Path, run_dir: str) -> Path | None:
    """A result row's run folder: as written, else `runs/<name>` of this grid (the grid was moved)."""
    if not run_dir:
        return None
    for candidate in (Path(run_dir), grid / "runs" / Path(run_dir).name):
        if (candidate / "metrics.json").is_file() or (candidate / CV_FILE).is_file():
            return candidate
    return None


# ---------------------------------------------------------------- cross-validation


def _cv_summary(summary: dict, n_folds: int) -> list[dict]:
    rows = []
    for name, values in summary.items():
        if not isinstance(values, dict) or "mean" not in values:
            continue
        folds = [_score(v) for v in values.get("values", [])]
        rows.append(
            {
                "name": name.replace("_", " "),
                "mean_sd": f"{_score(values['mean'])} ± {_score(values.get('sd'))}",
                "per_fold": (folds + [""] * n_folds)[:n_folds],
            }
        )
    return rows


def _oof_values(folder: Path, task: str, targets: list[str], data_dir: Path | None, here: Path) -> dict:
    """A regression's or multilabel's pooled plots and its worst out-of-fold tracks."""
    metrics = {"task": task, "targets": targets}
    plots = [{"src": data_uri(folder / name), "caption": f"out of fold: {caption}"} for name, caption in
             task_plots(metrics)]  # fmt: skip
    worst = worst_tracks(folder, task, metrics, data_dir, here, (OOF_TRACKS, OOF_PREDICTIONS))
    return {"figures": [plot for plot in plots if plot["src"]], "worst": worst}


def _oof(path: Path, data_dir: Path | None, here: Path) -> dict:
    """Pooled out-of-fold confusion matrix and worst mistakes, or a plain note when the file is absent."""
    if not path.is_file():
        return {"confusion": None, "mistakes": _no_predictions(f"No {OOF_PREDICTIONS} in the folder.")}
    classes, rows = read_predictions(path)
    index = {name: i for i, name in enumerate(classes)}
    counts = [[0] * len(classes) for _ in classes]
    for row in rows:
        if row["true"] in index and row["predicted"] in index:
            counts[index[row["true"]]][index[row["predicted"]]] += 1
    return {
        "confusion": confusion_tables(counts, classes),
        "mistakes": {**_no_predictions(None), **window_mistakes(classes, rows, data_dir, here)},
    }


# ---------------------------------------------------------------- one run


def run_section(folder: Path, here: Path, anchor: str, datasets: dict, grid: Path | None = None) -> dict:
    """Everything the page shows about one run folder; its data set is added to `datasets` once."""
    metrics = read_json(folder / "metrics.json")
    task = metrics.get("task", "classification")
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    history = read_json(folder / "history.json").get("history", []) if (folder / "history.json").is_file() else []
    data_dir = _data_dir(config.get("data_dir") or metrics.get("data_dir"), grid)
    dataset = dataset_section(data_dir, config.get("data_dir") or metrics.get("data_dir"), datasets)
    title = " · ".join(str(v) for v in (metrics.get("arch"), metrics.get("mode"), metrics.get("feature")) if v)
    figures = [{"src": data_uri(folder / name), "caption": caption} for name, caption in FIGURES]
    task_figures = [{"src": data_uri(folder / name), "caption": caption} for name, caption in task_plots(metrics)]
    return {
        "anchor": anchor,
        "title": f"{folder.name}: {title}" if grid or anchor != "run" else title,
        "folder": str(folder),
        "folder_path": folder,
        "dataset_anchor": dataset["anchor"] if dataset else None,
        "dataset_name": dataset["name"] if dataset else None,
        "settings": run_settings(metrics, config, data_dir),
        "times": run_times(folder, metrics, history),
        "task": task,
        "score_sets": task_score_sets(task, metrics),
        "task_figures": [f for f in task_figures if f["src"]],
        "figures": [f for f in figures if f["src"]],
        "missing_figures": [
            f"No {name} in the run folder."
            for name, _ in (*FIGURES, *task_plots(metrics))
            if not (folder / name).is_file()
        ],
        "mistakes": run_mistakes(folder, data_dir, here) if task == "classification" else None,
        "worst": worst_tracks(folder, task, metrics, data_dir, here) if task != "classification" else None,
    }


def run_settings(metrics: dict, config: dict, data_dir: Path | None) -> list[tuple[str, str]]:
    """Data set, spectrogram, architecture, mode, weights, epochs, LR and the other training settings."""
    shown = ("feature", "epochs_run", "keep", "kept_epoch", "best_epoch")
    merged = {**config, **{k: metrics[k] for k in shown if k in metrics}}
    pairs = [("data set", str(config.get("data_dir") or metrics.get("data_dir", "–")))]
    pairs.append(("spectrogram", spectrogram_text(data_dir)))
    order = ("feature", "arch", "mode", "weights", "epochs", "epochs_run", "keep", "kept_epoch", "best_epoch", "lr")
    order += ("bs", "size")
    order += ("augment", "balanced", "seed", "monitor", "patience")
    for key in order:
        if key in merged or key in metrics:
            value = merged.get(key, metrics.get(key))
            if key in ("kept_epoch", "best_epoch") and isinstance(value, int):
                value += 1  # shown 1-based, as the console does
            pairs.append((key.replace("_", " "), _text(value)))
    return pairs


def spectrogram_text(data_dir: Path | None) -> str:
    """The data set's spectrogram settings in one line, or why they are not known."""
    from ...data.dataset import read_spec

    if data_dir is None:
        return "unknown (data set folder not found)"
    try:
        spec = read_spec(data_dir)
    except MerError as exc:
        return f"unknown ({exc})"
    hop = spec.segment_hop_seconds if spec.segment_hop_seconds is not None else spec.segment_seconds
    return (
        f"{spec.n_mels} mel bands, {spec.sample_rate} Hz, n_fft {spec.n_fft}, hop {spec.hop_length}, "
        f"{spec.segment_seconds:g} s windows every {hop:g} s"
    )


def run_times(folder: Path, metrics: dict, history: list[dict]) -> list[tuple[str, str]]:
    """Total and per-epoch seconds, and when the run finished (metrics.json's time stamp)."""
    pairs = []
    if "seconds" in metrics:
        pairs.append(("total", f"{metrics['seconds']:.1f} s"))
    epochs = [row["seconds"] for row in history if "seconds" in row]
    if epochs:
        pairs.append(("per epoch", f"{statistics.mean(epochs):.1f} s (mean of {len(epochs)})"))
    finished = (folder / "metrics.json").stat().st_mtime
    pairs.append(("finished", time.strftime("%Y-%m-%d %H:%M", time.localtime(finished))))
    return pairs


def score_sets(metrics: dict) -> list[dict]:
    """The score tables of a run: validation windows, then (when recorded) validation tracks, test windows
    and test tracks, each with its confusion matrix."""
    classes = metrics.get("classes", [])
    how = f"A track's label: the {metrics.get('aggregate', 'mean')} of each clip's window probabilities."
    return [
        {
            "title": title,
            "unit": unit,
            "note": note,
            "kind": "classification",
            "scores": scores(values),
            "confusion": confusion_tables(values.get("confusion_matrix", []), classes),
        }
        for title, unit, values, note in _blocks(metrics, how)
    ]


def _blocks(metrics: dict, how: str) -> list[tuple[str, str, dict, str | None]]:
    """(title, unit, scores, note) of the validation windows and tracks and, when recorded, the test split's."""
    blocks = [("Validation scores (windows)", "windows", metrics, None)]
    if metrics.get("track"):
        blocks.append(("Validation scores (tracks)", "tracks", metrics["track"], how))
    test = metrics.get("test")
    if test:
        note = f"Held-out test set {test.get('data_dir', '')}: scored once, with the final model."
        blocks.append(("Test scores (windows)", "windows", test, note))
        if test.get("track"):
            blocks.append(("Test scores (tracks)", "tracks", test["track"], how))
    return blocks


def regression_score_sets(metrics: dict) -> list[dict]:
    """Per target (and their mean) CCC, Pearson r, R², RMSE and MAE of windows, tracks and the test split."""
    from ...scoring.scores import REGRESSION_SCORES

    how = "A track's prediction: the mean of its windows' predictions."
    sets = []
    for title, unit, values, note in _blocks(metrics, how):
        rows = [{"name": name, "values": scores} for name, scores in values.get("per_target", {}).items()]
        rows.append({"name": "mean", "values": values, "total": True})
        cells = [
            {
                "name": row["name"],
                "total": row.get("total", False),
                "cells": [_score(row["values"].get(k)) for k in REGRESSION_SCORES],
            }
            for row in rows
        ]
        sets.append({"title": title, "unit": unit, "note": note, "kind": "regression", "rows": cells})
    return sets


def multilabel_score_sets(metrics: dict) -> list[dict]:
    """Per mood precision, recall, F1, AP and support, then micro/macro F1 and mAP, of windows, tracks and test."""
    threshold = metrics.get("threshold")
    how = "A track's mood probabilities: the mean of its windows'."
    sets = []
    for title, unit, values, note in _blocks(metrics, how):
        rows = [
            {
                "name": mood,
                "cells": [_score(s.get(k)) for k in ("precision", "recall", "f1", "ap")],
                "support": s.get("support", 0),
            }
            for mood, s in values.get("per_label", {}).items()
        ]
        totals = [
            (name, _score(values.get(key)))
            for key, name in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP"))
        ]
        note = " ".join(
            n
            for n in (note, f"A mood is predicted at probability ≥ {threshold}." if threshold is not None else None)
            if n
        )
        sets.append({"title": title, "unit": unit, "note": note, "kind": "multilabel", "rows": rows, "totals": totals})
    return sets


def task_score_sets(task: str, metrics: dict) -> list[dict]:
    """The score tables of a run of `task`."""
    builders = {"regression": regression_score_sets, "multilabel": multilabel_score_sets}
    return builders.get(task, score_sets)(metrics)


def task_plots(metrics: dict) -> list[tuple[str, str]]:
    """The task's own plots (file, caption): scatters and circumplex of a regression, per-mood bars of a
    multilabel run, of validation and (with a test split) test."""
    from ...plots.figures import circumplex_axes
    from ...runs.layout import CIRCUMPLEX_FILE, LABELS_FILE, scatter_file

    task = metrics.get("task", "classification")
    targets = list(metrics.get("targets") or metrics.get("moods") or [])
    if task == "regression":
        plots = [(scatter_file(t), f"predicted against true {t} (tracks)") for t in targets]
        if circumplex_axes(targets):
            plots.append((CIRCUMPLEX_FILE, "valence–arousal plane: each track's true point joined to its prediction"))
    elif task == "multilabel":
        plots = [(LABELS_FILE, "precision, recall, F1 and AP per mood (windows)")]
    else:
        return []
    if metrics.get("test"):
        plots += [("test_" + name, f"test split: {caption}") for name, caption in plots]
    return plots


def _score(value) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.3f}"


def scores(metrics: dict) -> dict:
    """Per-class precision/recall/F1/support plus accuracy and macro-F1."""
    per_class = metrics.get("per_class", {})
    return {
        "rows": [{"name": name, **values} for name, values in per_class.items()],
        "accuracy": metrics.get("accuracy", float("nan")),
        "macro_f1": metrics.get("macro_f1", float("nan")),
        "total": sum(v.get("support", 0) for v in per_class.values()),
        "absent": metrics.get("absent_classes", []),
    }


def confusion_tables(matrix: list[list[int]], classes: list[str]) -> dict:
    """Counts and row-normalised shares, each cell with a shade from 0 to 1."""
    top = max((v for row in matrix for v in row), default=0) or 1
    rows = []
    for name, counts in zip(classes, matrix):
        total = sum(counts)
        shares = [v / total if total else 0.0 for v in counts]
        rows.append(
            {
                "name": name,
                "counts": [{"value": v, "alpha": v / top} for v in counts],
                "normalised": [{"value": s, "alpha": s} for s in shares],
            }
        )
    return {"classes": classes, "rows": rows}


# ---------------------------------------------------------------- predictions and mistakes


def read_predictions(path: Path) -> tuple[list[str], list[dict]]:
    """Classes (from the `prob_<class>` columns, in order) and rows of a predictions CSV."""
    columns, rows = read_csv(path)
    classes = [c.removeprefix("prob_") for c in columns if c.startswith("prob_")]
    missing = [c for c in ("clip_id", "source", "true", "predicted") if c not in columns]
    if missing or not classes:
        what = ", ".join(missing) if missing else "prob_<class>"
        raise MerError(f"{path}: lacks the column(s) {what}; rerun the training that wrote it")
    for row in rows:
        row["probs"] = {name: _number(row[f"prob_{name}"]) or 0.0 for name in classes}
        row["wrong_p"] = max((p for name, p in row["probs"].items() if name != row["true"]), default=0.0)
    return classes, rows


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """Column names and rows of a predictions CSV; an unreadable one is one clear error."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MerError(f"{path}: cannot be read ({exc}); rerun the training that wrote it") from exc


def run_mistakes(folder: Path, data_dir: Path | None, here: Path) -> dict:
    """Worst window and track mistakes from the run's prediction files; a plain note when they are absent."""
    windows, tracks = folder / VALID_PREDICTIONS, folder / TRACK_PREDICTIONS
    if not windows.is_file() and not tracks.is_file():
        return _no_predictions(
            f"This run folder has no {VALID_PREDICTIONS} or {TRACK_PREDICTIONS} (written by newer versions of "
            "`mer-fastai train`), so its per-clip mistakes cannot be shown; retrain to get them."
        )
    result = _no_predictions(None)
    if windows.is_file():
        result.update(window_mistakes(*read_predictions(windows), data_dir, here))
    if tracks.is_file():
        result.update(track_mistakes(*read_predictions(tracks), here))
    return result


def worst_tracks(
    folder: Path,
    task: str,
    metrics: dict,
    data_dir: Path | None,
    here: Path,
    files: tuple[str, str] = (TRACK_PREDICTIONS, VALID_PREDICTIONS),
) -> dict:
    """The validation tracks a regression or multilabel run (or cross-validation) got most wrong, each with the
    spectrogram of its first window and a link to its audio; a plain note when the prediction files
    (`files`: tracks, windows) are absent."""
    tracks = folder / files[0]
    if not tracks.is_file():
        return {"message": f"This folder has no {files[0]}, so its worst tracks cannot be shown.", "rows": []}
    columns, rows = read_csv(tracks)
    targets = list(metrics.get("targets") or metrics.get("moods") or [])
    ranked = (regression_errors if task == "regression" else mood_errors)(tracks, columns, rows, targets)
    thumbs = first_windows(folder / files[1], data_dir)
    shown = [
        {
            "clip_id": row["clip_id"],
            "windows": row.get("windows", ""),
            "cells": cells,
            "thumb": thumbs.get(row["clip_id"]),
            "audio": audio_link(row.get("source", ""), here),
        }
        for row, cells in ranked[:WORST]
    ]
    heads = [f"{kind} {t}" for t in targets for kind in ("true", "predicted")] + ["mean |error|"]
    if task == "regression":
        intro = (f"The {len(shown)} of {len(rows)} validation tracks with the largest mean absolute error "
                 "over the targets (a track's prediction: the mean of its windows'):")  # fmt: skip
    else:
        heads = ["true moods", "predicted moods", "wrong moods", "probabilities"]
        wrong = sum(1 for _, cells in ranked if cells[2] != "0")
        intro = (f"{wrong} of {len(rows)} validation tracks have at least one mood wrong"
                 + (f"; the {min(wrong, WORST)} with the most wrong moods:" if wrong else "."))  # fmt: skip
        shown = shown[:wrong]
    return {"message": None, "intro": intro, "heads": heads, "rows": shown}


def regression_errors(path: Path, columns: list[str], rows: list[dict], targets: list[str]) -> list[tuple]:
    """(row, cells) of a regression track_predictions.csv, largest mean absolute error first."""
    missing = [c for t in targets for c in (f"true_{t}", f"pred_{t}") if c not in columns]
    if missing or "clip_id" not in columns:
        raise MerError(
            f"{path}: lacks the column(s) {', '.join(missing) or 'clip_id'}; rerun the training that wrote it"
        )
    ranked = []
    for row in rows:
        pairs = [(_number(row[f"true_{t}"]) or 0.0, _number(row[f"pred_{t}"]) or 0.0) for t in targets]
        error = statistics.mean(abs(p - t) for t, p in pairs) if pairs else 0.0
        ranked.append((error, row, [f"{v:.3f}" for pair in pairs for v in pair] + [f"{error:.3f}"]))
    ranked.sort(key=lambda item: -item[0])
    return [(row, cells) for _, row, cells in ranked]


def mood_errors(path: Path, columns: list[str], rows: list[dict], moods: list[str]) -> list[tuple]:
    """(row, cells) of a multilabel track_predictions.csv: most wrong moods first, then the largest distance of
    the probabilities from the truth."""
    missing = [c for c in ("clip_id", "true", "predicted", *(f"prob_{m}" for m in moods)) if c not in columns]
    if missing:
        raise MerError(f"{path}: lacks the column(s) {', '.join(missing)}; rerun the training that wrote it")
    ranked = []
    for row in rows:
        true, chosen = _moods(row["true"]), _moods(row["predicted"])
        probs = {m: _number(row[f"prob_{m}"]) or 0.0 for m in moods}
        distance = sum(abs(p - (m in true)) for m, p in probs.items())
        text = " · ".join(f"{m} {p:.2f}" for m, p in probs.items())
        cells = [", ".join(sorted(true)) or "none", ", ".join(sorted(chosen)) or "none", str(len(true ^ chosen)), text]
        ranked.append((len(true ^ chosen), distance, row, cells))
    ranked.sort(key=lambda item: (-item[0], -item[1]))
    return [(row, cells) for _, _, row, cells in ranked]


def _moods(text: str) -> set[str]:
    return {m for m in text.split(";") if m}


def first_windows(path: Path, data_dir: Path | None) -> dict[str, str | None]:
    """Each clip's first validation window's spectrogram as a data URI (valid_predictions.csv's `image`)."""
    if data_dir is None or not path.is_file():
        return {}
    thumbs: dict[str, str | None] = {}
    for row in read_csv(path)[1]:
        if row.get("clip_id") and row["clip_id"] not in thumbs and row.get("image"):
            thumbs[row["clip_id"]] = data_uri(data_dir / row["image"])
    return thumbs


def _no_predictions(message: str | None) -> dict:
    return {"message": message, "windows": None, "tracks": None}


def window_mistakes(classes: list[str], rows: list[dict], data_dir: Path | None, here: Path) -> dict:
    """The misclassified windows with the highest wrong-class probability, with thumbnails and audio links."""
    wrong = sorted((r for r in rows if r["predicted"] != r["true"]), key=lambda r: -r["wrong_p"])
    shown = []
    for row in wrong[:WORST]:
        image = data_dir / row["image"] if data_dir is not None and row.get("image") else None
        shown.append(
            {
                **_mistake(row, classes, here),
                "thumb": data_uri(image) if image is not None else None,
                "start": f"{_number(row.get('segment_start')) or 0.0:.1f}",
            }
        )
    return {"windows": shown, "wrong_windows": len(wrong), "total_windows": len(rows)}


def track_mistakes(classes: list[str], rows: list[dict], here: Path) -> dict:
    """The misclassified tracks, worst first, and the track accuracy."""
    wrong = sorted((r for r in rows if r["predicted"] != r["true"]), key=lambda r: -r["wrong_p"])
    shown = [{**_mistake(row, classes, here), "windows": row.get("windows", "")} for row in wrong[:WORST]]
    correct = len(rows) - len(wrong)
    return {
        "tracks": shown,
        "track_correct": correct,
        "total_tracks": len(rows),
        "track_accuracy": correct / len(rows) if rows else float("nan"),
    }


def _mistake(row: dict, classes: list[str], here: Path) -> dict:
    return {
        "clip_id": row["clip_id"],
        "true": row["true"],
        "predicted": row["predicted"],
        "wrong_p": row["wrong_p"],
        "probs": [{"name": c, "value": row["probs"][c], "predicted": c == row["predicted"]} for c in classes],
        "audio": audio_link(row["source"], here),
    }


def audio_link(source: str, here: Path) -> dict:
    """A link to an audio file relative to the page's folder, or just its name when it is not found."""
    path = Path(source)
    if not path.is_file():
        return {"href": None, "text": source}
    relative = Path(os.path.relpath(path.resolve(), here))
    return {"href": quote(relative.as_posix()), "text": path.name}


# ---------------------------------------------------------------- data set


def _data_dir(recorded: str | None, grid: Path | None) -> Path | None:
    """The data set folder a run recorded: as written, else `data/<name>` of its grid (the grid was moved)."""
    if not recorded:
        return None
    candidates = [Path(recorded)] + ([grid / "data" / Path(recorded).name] if grid is not None else [])
    return next((p for p in candidates if (p / "dataset.json").is_file()), None)


def dataset_section(data_dir: Path | None, recorded: str | None, datasets: dict) -> dict | None:
    """The data set facts, made once per data set folder (cells of a grid share theirs)."""
    if not recorded:
        return None
    key = str(data_dir.resolve()) if data_dir is not None else recorded
    if key not in datasets:
        name = Path(recorded).name
        anchor = f"data-{_slug(name)}-{len(datasets) + 1}"
        datasets[key] = {"anchor": anchor, "name": name, "path": recorded, **dataset_facts(data_dir)}
    return datasets[key]


def dataset_facts(data_dir: Path | None) -> dict:
    """Clips and windows per class and split, window coverage per clip, skipped files and notes."""
    from ...data.dataset import SPLITS, read_info, read_manifest, read_spec

    if data_dir is None:
        return {"message": "The data set folder was not found (moved or deleted), so its facts cannot be shown."}
    try:
        with reading(data_dir):  # not while prepare changes it
            info, rows, spec = read_info(data_dir), read_manifest(data_dir), read_spec(data_dir)
    except MerError as exc:
        return {"message": f"The data set cannot be read: {exc}"}
    clips: dict[tuple[str, str], set[str]] = defaultdict(set)
    covered: dict[tuple[str, str], float] = {}
    for row in rows:
        clips[(row.split, row.label)].add(row.clip_id)
        end = row.segment_start + spec.segment_seconds
        covered[(row.split, row.clip_id)] = max(end, covered.get((row.split, row.clip_id), 0.0))
    splits = [split for split in SPLITS if split != "test" or info.counts.get("test")]
    table = [_class_row(name, info.counts, clips, splits) for name in info.classes]
    columns = [f"{split}_{what}" for split in splits for what in ("clips", "windows")]
    table.append({"name": "all", "total": True, **{k: sum(r[k] for r in table) for k in columns}})
    facts = [("feature", info.feature), ("task", info.task)]
    if info.targets:
        facts.append(("targets" if info.is_regression else "moods", ", ".join(info.targets)))
    facts.append(("folders (what the split is stratified by)" if info.targets else "classes", ", ".join(info.classes)))
    facts.append(("audio folder", info.audio_dir or "–"))
    facts += [("clips", str(info.clips)), ("windows", str(info.segments))]
    if info.excluded_by_feature:
        facts.append(("clips left out by the feature", str(info.excluded_by_feature)))
    return {
        "message": None,
        "splits": splits,
        "facts": facts,
        "classes": table,
        "durations": _durations(covered, splits),
        "skipped": info.skipped,
        "notes": info.notes,
    }


def _class_row(name: str, counts: dict, clips: dict, splits: list[str]) -> dict:
    row = {"name": name, "total": False}
    for split in splits:
        row[f"{split}_windows"] = counts.get(split, {}).get(name, 0)
        row[f"{split}_clips"] = len(clips.get((split, name), ()))
    return row


def _durations(covered: dict[tuple[str, str], float], splits: list[str]) -> list[dict]:
    result = []
    for split in splits:
        values = [seconds for (s, _), seconds in covered.items() if s == split]
        if values:
            result.append(
                {
                    "split": split,
                    "clips": len(values),
                    "min": min(values),
                    "median": statistics.median(values),
                    "max": max(values),
                }
            )
    return result


# ---------------------------------------------------------------- versions and helpers


def versions(run_dir: Path) -> list[dict]:
    """mer-fastai, torch and fastai versions: as the run recorded them where it did, else the installed ones."""
    from importlib.metadata import PackageNotFoundError, version

    recorded = {}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        recorded = dict(read_json(metrics).get("versions", {}))
    if "mer-fastai" not in recorded:
        model_version = _model_version(run_dir)
        if model_version:
            recorded["mer-fastai"] = model_version
    rows = []
    for name in ("mer-fastai", "torch", "fastai"):
        if name in recorded:
            rows.append({"name": name, "value": recorded[name], "origin": "recorded by the run"})
            continue
        try:
            installed = __version__ if name == "mer-fastai" else version(name)
        except PackageNotFoundError:
            installed = "not installed"
        rows.append({"name": name, "value": installed, "origin": "installed now (the run did not record it)"})
    return rows


def _model_version(run_dir: Path) -> str | None:
    """The package version stored in the run's model file header (the weights are not read)."""
    from ...runs.layout import METADATA_KEY, MODEL_FILE

    path = run_dir / MODEL_FILE
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
        return json.loads(raw).get("package_version") if raw else None
    except Exception:  # a damaged model file: the installed version is shown instead
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _natural(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "–"
    return "–" if value is None else str(value)
