"""`mer-fastai evaluate`: track-level scores of a saved model on labelled audio."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .._plumbing.progress import console
from . import options
from .predict import Aggregate, Bs, Device, Hop, Model, Window


def command(
    model: Path = Model,
    audio_dir: Path = typer.Argument(..., help="Folder of labelled audio clips (searched recursively)."),
    labels: Path = options.Labels,
    feature: str = options.feature_option(required=False),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder for metrics.json, the report, the confusion matrix and predictions.csv.",
    ),
    group_by: str = options.group_by_option("copied to predictions.csv as each track's group (e.g. Artist)"),
    id_column: str = options.IdColumn,
    label_column: str = options.LabelColumn,
    cuts: str = options.Cuts,
    skip_unlabeled: bool = options.SkipUnlabeled,
    target: list[str] = typer.Option(
        None,
        "--target",
        help="Regression or multilabel model: the labels column of each of its targets or moods, in the model's "
        "order (repeatable; default: the columns named as the model's targets). A multilabel model may take "
        "--label-column (';'-separated moods) instead.",
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Multilabel model with vote-share --target columns: a mood holds when its share is at least this "
        "times the clip's top share (default 0.5, as prepare).",
    ),
    window: float = Window,
    hop: float = Hop,
    aggregate: str = Aggregate,
    bs: int = Bs,
    device: str = Device,
) -> None:
    """Score a model's tracks against known labels: accuracy, macro-F1, report, confusion matrix; a regression
    model's CCC, r, R², RMSE, MAE with scatter and circumplex plots; a multilabel model's F1, mAP, per mood."""
    from ..evaluation.evaluator import evaluate

    result = evaluate(
        model,
        audio_dir,
        out,
        labels=labels,
        feature=feature,
        group_by=group_by,
        id_column=id_column,
        label_column=label_column,
        cuts=options.parse_cuts(cuts),
        window=window,
        hop=hop,
        aggregate=aggregate,
        skip_unlabeled=skip_unlabeled,
        targets=list(target or []) or None,
        threshold=threshold,
        bs=bs,
        device=device,
    )
    metrics = result.metrics
    made = "mean of the members' tracks" if metrics.get("inputs") else f"{aggregate} of windows"
    console.print(scores_table(metrics, f"{metrics['feature']} · {metrics['n_tracks']} tracks ({made})"))
    if "window_accuracy" in metrics:
        console.print(f"window accuracy {metrics['window_accuracy']:.3f} over {metrics['n_windows']} windows")
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} file(s):")
        for item in result.skipped:
            console.print(f"  [yellow]{escape(f'{item.file}: {item.reason}')}", soft_wrap=True, highlight=False)
    for note in [*metrics["notes"], *([metrics["note"]] if "note" in metrics else [])]:
        console.print(f"  [yellow]{escape(note)}", soft_wrap=True, highlight=False)
    console.print(f"report folder: [bold]{result.out_dir}")


def scores_table(metrics: dict, title: str):
    """The terminal table of an evaluation, by task (a regression or multilabel one shows windows and tracks; a
    mixed-input ensemble's, tracks only)."""
    from ..plots.tables import multilabel_table, regression_table, summary_table

    if metrics.get("task") in ("regression", "multilabel") and "window_scores" not in metrics:
        return track_table(metrics, title)
    if metrics.get("task") == "regression":
        return regression_table({**metrics["window_scores"], "track": metrics}, title)
    if metrics.get("task") == "multilabel":
        block = {**metrics["window_scores"], "n_windows": metrics["n_windows"], "n_tracks": metrics["n_tracks"]}
        return multilabel_table({**block, "track": metrics}, title)
    return summary_table(metrics, title)


def track_table(metrics: dict, title: str):
    """Track scores only (a mixed-input ensemble's regression or multilabel evaluation): per target CCC, r, R²,
    RMSE, MAE and their mean, or per mood precision, recall, F1, AP, support and micro/macro F1 and mAP."""
    from rich.table import Table

    regression = metrics["task"] == "regression"
    keys = ("ccc", "pearson_r", "r2", "rmse", "mae") if regression else ("precision", "recall", "f1", "ap")
    heads = ("CCC", "r", "R²", "RMSE", "MAE") if regression else ("precision", "recall", "F1", "AP", "support")
    table = Table(title=title, title_justify="left")
    for head in ("target" if regression else "mood", *heads):
        table.add_column(head, justify="right" if head in heads else "left")
    for name, scores in metrics["per_target" if regression else "per_label"].items():
        table.add_row(name, *(_cell(scores[key]) for key in keys), *([] if regression else [str(scores["support"])]))
    table.add_section()
    if regression:
        table.add_row("[bold]mean", *(_cell(metrics[key]) for key in keys))
    for key, name in () if regression else (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP")):
        table.add_row(f"[bold]{name}", "", "", _cell(metrics[key]), "", str(metrics["n_tracks"]))
    return table


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("evaluate")(command)
