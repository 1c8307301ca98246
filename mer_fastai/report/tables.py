"""Rich terminal tables of a finished training's or evaluation's scores, one per task, and of a
cross-validation's summary."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table


def summary_table(metrics: dict, title: str) -> Table:
    """Rich table: one row per class plus the overall scores; a training's metrics (with a `track` block)
    add the track scores and, with a `test` block, the test split's window and track scores."""
    table = Table(title=title, title_justify="left")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, scores in metrics["per_class"].items():
        table.add_row(
            name,
            f"{scores['precision']:.3f}",
            f"{scores['recall']:.3f}",
            f"{scores['f1']:.3f}",
            str(scores["support"]),
        )
    total = sum(s["support"] for s in metrics["per_class"].values())
    table.add_section()
    table.add_row("[bold]accuracy", "", "", f"[bold]{metrics['accuracy']:.3f}", str(total))
    table.add_row("[bold]macro F1", "", "", f"[bold]{metrics['macro_f1']:.3f}", str(total))
    _score_rows(table, metrics, "")
    if metrics.get("test"):
        table.add_section()
        test = metrics["test"]
        table.add_row("[bold]test accuracy", "", "", f"[bold]{test['accuracy']:.3f}", str(test["n_windows"]))
        table.add_row("[bold]test macro F1", "", "", f"[bold]{test['macro_f1']:.3f}", str(test["n_windows"]))
        _score_rows(table, test, "test ")
    return table


def regression_table(metrics: dict, title: str) -> Table:
    """Rich table of a regression run: per target (and their mean) CCC, r, R², RMSE, MAE over windows and
    tracks, and with a `test` block the test split's."""
    table = Table(title=title, title_justify="left")
    for column in ("target", "level", "CCC", "r", "R²", "RMSE", "MAE"):
        table.add_column(column, justify="left" if column in ("target", "level") else "right")
    blocks = [("", metrics), *([("test ", metrics["test"])] if metrics.get("test") else [])]
    for prefix, block in blocks:
        table.add_section()
        for level, scores in ((f"{prefix}windows", block), (f"{prefix}tracks", block["track"])):
            for name, values in [*scores["per_target"].items(), ("[bold]mean", scores)]:
                table.add_row(name, level, *(cell(values[key]) for key in ("ccc", "pearson_r", "r2", "rmse", "mae")))
    return table


def multilabel_table(metrics: dict, title: str) -> Table:
    """Rich table of a multilabel run: per mood precision/recall/F1/AP/support of the windows, then micro and
    macro F1 and mAP of windows and tracks (and of the test split)."""
    table = Table(title=f"{title} — threshold {metrics['threshold']}", title_justify="left")
    for column in ("mood", "precision", "recall", "F1", "AP", "support"):
        table.add_column(column, justify="left" if column == "mood" else "right")
    for name, scores in metrics["per_label"].items():
        cells = (cell(scores[key]) for key in ("precision", "recall", "f1", "ap"))
        table.add_row(name, *cells, str(scores["support"]))
    blocks = [("", metrics), *([("test ", metrics["test"])] if metrics.get("test") else [])]
    for prefix, block in blocks:
        table.add_section()
        for level, scores, count in ((f"{prefix}windows", block, block["n_windows"]),
                                     (f"{prefix}tracks", block["track"], block["n_tracks"])):  # fmt: skip
            for key, name in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP")):
                table.add_row(f"[bold]{level} {name}", "", "", f"[bold]{cell(scores[key])}", "", str(count))
    return table


def cv_table(summary: dict, pooled: dict, scores: Sequence[str], title: str) -> Table:
    """A cross-validation's table: each of the task's `scores` (windows, then tracks; a regression's means over its
    targets, the per-target ones are in cv.json) with mean ± sd, 95 % interval, pooled and per-fold values."""
    table = Table(title=title)
    for column in ("score", "mean ± sd", "95 % interval", "pooled (out of fold)", "per fold"):
        table.add_column(column)
    for name in (prefix + key for prefix in ("", "track_") for key in scores):
        values = summary[name]
        low, high = values["ci95"]
        table.add_row(
            name,
            f"{cell(values['mean'])} ± {cell(values['sd'])}",
            f"{cell(low)} – {cell(high)}",
            cell(pooled[name]),
            " ".join(cell(v) for v in values["values"]),
        )
    return table


def cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _score_rows(table: Table, metrics: dict, prefix: str) -> None:
    """The track accuracy and macro-F1 rows of metrics with a `track` block (support: tracks)."""
    track = metrics.get("track")
    if track:
        tracks = str(metrics["n_tracks"])
        table.add_row(f"[bold]{prefix}track accuracy", "", "", f"[bold]{track['accuracy']:.3f}", tracks)
        table.add_row(f"[bold]{prefix}track macro F1", "", "", f"[bold]{track['macro_f1']:.3f}", tracks)
