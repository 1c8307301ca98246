"""The errors the page lists from prediction CSVs: misclassified windows and tracks, or the worst tracks of a
regression or multilabel run, each with its spectrogram thumbnail and a link to its audio."""

from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path
from urllib.parse import quote

from ...errors import MerError
from ...runs.layout import TRACK_PREDICTIONS, VALID_PREDICTIONS
from ...tasks.base import Task
from .templating import data_uri
from .values import number

WORST = 12  # mistakes shown per table


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    """Column names and rows of a predictions CSV; an unreadable one is one clear error."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MerError(f"{path}: cannot be read ({exc}); rerun the training that wrote it") from exc


def read_predictions(path: Path) -> tuple[list[str], list[dict]]:
    """Classes (from the `prob_<class>` columns, in order) and rows of a predictions CSV."""
    columns, rows = read_csv(path)
    classes = [c.removeprefix("prob_") for c in columns if c.startswith("prob_")]
    missing = [c for c in ("clip_id", "source", "true", "predicted") if c not in columns]
    if missing or not classes:
        what = ", ".join(missing) if missing else "prob_<class>"
        raise MerError(f"{path}: lacks the column(s) {what}; rerun the training that wrote it")
    for row in rows:
        row["probs"] = {name: number(row[f"prob_{name}"]) or 0.0 for name in classes}
        row["wrong_p"] = max((p for name, p in row["probs"].items() if name != row["true"]), default=0.0)
    return classes, rows


# ---------------------------------------------------------------- misclassified windows and tracks


def no_predictions(message: str | None) -> dict:
    """The mistakes of a folder without prediction files: `message` says why."""
    return {"message": message, "windows": None, "tracks": None}


def run_mistakes(folder: Path, data_dir: Path | None, here: Path) -> dict:
    """Worst window and track mistakes from the run's prediction files; a plain note when they are absent."""
    windows, tracks = folder / VALID_PREDICTIONS, folder / TRACK_PREDICTIONS
    if not windows.is_file() and not tracks.is_file():
        return no_predictions(
            f"This run folder has no {VALID_PREDICTIONS} or {TRACK_PREDICTIONS} (written by newer versions of "
            "`mer-fastai train`), so its per-clip mistakes cannot be shown; retrain to get them."
        )
    result = no_predictions(None)
    if windows.is_file():
        result.update(window_mistakes(*read_predictions(windows), data_dir, here))
    if tracks.is_file():
        result.update(track_mistakes(*read_predictions(tracks), here))
    return result


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
                "start": f"{number(row.get('segment_start')) or 0.0:.1f}",
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


# ---------------------------------------------------------------- worst tracks of values and moods


def worst_tracks(
    folder: Path,
    task: Task,
    names: list[str],
    data_dir: Path | None,
    here: Path,
    files: tuple[str, str] = (TRACK_PREDICTIONS, VALID_PREDICTIONS),
) -> dict:
    """The validation tracks a regression or multilabel run (or cross-validation) got most wrong, ranked as
    `task.facts.report_errors` says, each with the spectrogram of its first window and a link to its audio; a plain
    note when the prediction files (`files`: tracks, windows) are absent. `names`: the targets or moods."""
    tracks = folder / files[0]
    if not tracks.is_file():
        return {"message": f"This folder has no {files[0]}, so its worst tracks cannot be shown.", "rows": []}
    columns, rows = read_csv(tracks)
    ranked, heads, intro = TRACK_RANKINGS[task.facts.report_errors](tracks, columns, rows, names)
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
    return {"message": None, "intro": intro, "heads": heads, "rows": shown}


def largest_errors(path: Path, columns: list[str], rows: list[dict], targets: list[str]) -> tuple:
    """(row, cells) of a regression track_predictions.csv, largest mean absolute error first; headings; intro."""
    missing = [c for t in targets for c in (f"true_{t}", f"pred_{t}") if c not in columns]
    if missing or "clip_id" not in columns:
        raise MerError(
            f"{path}: lacks the column(s) {', '.join(missing) or 'clip_id'}; rerun the training that wrote it"
        )
    ranked = []
    for row in rows:
        pairs = [(number(row[f"true_{t}"]) or 0.0, number(row[f"pred_{t}"]) or 0.0) for t in targets]
        error = statistics.mean(abs(p - t) for t, p in pairs) if pairs else 0.0
        ranked.append((error, row, [f"{v:.3f}" for pair in pairs for v in pair] + [f"{error:.3f}"]))
    ranked.sort(key=lambda item: -item[0])
    heads = [f"{kind} {t}" for t in targets for kind in ("true", "predicted")] + ["mean |error|"]
    intro = (f"The {min(len(rows), WORST)} of {len(rows)} validation tracks with the largest mean absolute error "
             "over the targets (a track's prediction: the mean of its windows'):")  # fmt: skip
    return [(row, cells) for _, row, cells in ranked], heads, intro


def wrong_moods(path: Path, columns: list[str], rows: list[dict], moods: list[str]) -> tuple:
    """(row, cells) of a multilabel track_predictions.csv's tracks with a mood wrong: most wrong moods first, then
    the largest distance of the probabilities from the truth; headings; intro."""
    missing = [c for c in ("clip_id", "true", "predicted", *(f"prob_{m}" for m in moods)) if c not in columns]
    if missing:
        raise MerError(f"{path}: lacks the column(s) {', '.join(missing)}; rerun the training that wrote it")
    ranked = []
    for row in rows:
        true, chosen = _moods(row["true"]), _moods(row["predicted"])
        probs = {m: number(row[f"prob_{m}"]) or 0.0 for m in moods}
        distance = sum(abs(p - (m in true)) for m, p in probs.items())
        text = " · ".join(f"{m} {p:.2f}" for m, p in probs.items())
        cells = [", ".join(sorted(true)) or "none", ", ".join(sorted(chosen)) or "none", str(len(true ^ chosen)), text]
        ranked.append((len(true ^ chosen), distance, row, cells))
    ranked.sort(key=lambda item: (-item[0], -item[1]))
    wrong = sum(1 for count, *_ in ranked if count)
    heads = ["true moods", "predicted moods", "wrong moods", "probabilities"]
    intro = (f"{wrong} of {len(rows)} validation tracks have at least one mood wrong"
             + (f"; the {min(wrong, WORST)} with the most wrong moods:" if wrong else "."))  # fmt: skip
    return [(row, cells) for _, _, row, cells in ranked[:wrong]], heads, intro


def _moods(text: str) -> set[str]:
    return {m for m in text.split(";") if m}


# how each `TaskFacts.report_errors` of worst tracks ranks them
TRACK_RANKINGS = {"largest_errors": largest_errors, "wrong_labels": wrong_moods}


def first_windows(path: Path, data_dir: Path | None) -> dict[str, str | None]:
    """Each clip's first validation window's spectrogram as a data URI (valid_predictions.csv's `image`)."""
    if data_dir is None or not path.is_file():
        return {}
    thumbs: dict[str, str | None] = {}
    for row in read_csv(path)[1]:
        if row.get("clip_id") and row["clip_id"] not in thumbs and row.get("image"):
            thumbs[row["clip_id"]] = data_uri(data_dir / row["image"])
    return thumbs
