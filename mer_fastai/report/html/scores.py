"""A run's score tables on the page: per class, target or mood, of validation (and test) windows and tracks."""

from __future__ import annotations

from ...runs.layout import REFIT_KEY
from ...tasks.base import Task
from .values import score_text


def score_sets(task: Task, metrics: dict) -> list[dict]:
    """The score tables of a run of `task` (its `per_output` block: per class, per target or per mood)."""
    return SCORE_TABLES[task.facts.per_output](metrics)


def class_score_sets(metrics: dict) -> list[dict]:
    """The score tables of a run: validation windows, then (when recorded) validation tracks, test windows
    and test tracks, each with its confusion matrix."""
    classes = metrics.get("classes", [])
    how = f"A track's label: the {metrics.get('aggregate', 'mean')} of each clip's window probabilities."
    return [
        {
            "title": title,
            "unit": unit,
            "note": note,
            "kind": "per_class",
            "scores": class_scores(values),
            "confusion": confusion_tables(values.get("confusion_matrix", []), classes),
        }
        for title, unit, values, note in _blocks(metrics, how)
    ]


def _blocks(metrics: dict, how: str) -> list[tuple[str, str, dict, str | None]]:
    """(title, unit, scores, note) of the validation windows and tracks and, when recorded, the test split's."""
    blocks = [] if metrics.get(REFIT_KEY) else [("Validation scores (windows)", "windows", metrics, None)]
    if metrics.get("track"):
        blocks.append(("Validation scores (tracks)", "tracks", metrics["track"], how))
    test = metrics.get("test")
    if test:
        note = f"Held-out test set {test.get('data_dir', '')}: scored once, with the final model."
        blocks.append(("Test scores (windows)", "windows", test, note))
        if test.get("track"):
            blocks.append(("Test scores (tracks)", "tracks", test["track"], how))
    return blocks


def target_score_sets(metrics: dict) -> list[dict]:
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
                "cells": [score_text(row["values"].get(k)) for k in REGRESSION_SCORES],
            }
            for row in rows
        ]
        sets.append({"title": title, "unit": unit, "note": note, "kind": "per_target", "rows": cells})
    return sets


def mood_score_sets(metrics: dict) -> list[dict]:
    """Per mood precision, recall, F1, AP and support, then micro/macro F1 and mAP, of windows, tracks and test."""
    threshold = metrics.get("threshold")
    how = "A track's mood probabilities: the mean of its windows'."
    sets = []
    for title, unit, values, note in _blocks(metrics, how):
        rows = [
            {
                "name": mood,
                "cells": [score_text(s.get(k)) for k in ("precision", "recall", "f1", "ap")],
                "support": s.get("support", 0),
            }
            for mood, s in values.get("per_label", {}).items()
        ]
        totals = [
            (name, score_text(values.get(key)))
            for key, name in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP"))
        ]
        note = " ".join(
            n
            for n in (note, f"A mood is predicted at probability ≥ {threshold}." if threshold is not None else None)
            if n
        )
        sets.append({"title": title, "unit": unit, "note": note, "kind": "per_label", "rows": rows, "totals": totals})
    return sets


# the tables of each `TaskFacts.per_output` block
SCORE_TABLES = {"per_class": class_score_sets, "per_target": target_score_sets, "per_label": mood_score_sets}


def class_scores(metrics: dict) -> dict:
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
