"""`mer-fastai evaluate`: track-level scores of a saved model on labelled audio."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..progress import console
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
    from ..evaluate import evaluate

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
    console.print(
        scores_table(metrics, f"{metrics['feature']} · {metrics['n_tracks']} tracks ({aggregate} of windows)")
    )
    if "window_accuracy" in metrics:
        console.print(f"window accuracy {metrics['window_accuracy']:.3f} over {metrics['n_windows']} windows")
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} file(s):")
        for item in result.skipped:
            console.print(f"  [yellow]{escape(f'{item.file}: {item.reason}')}", soft_wrap=True, highlight=False)
    for note in metrics["notes"]:
        console.print(f"  [yellow]{escape(note)}", soft_wrap=True, highlight=False)
    console.print(f"report folder: [bold]{result.out_dir}")


def scores_table(metrics: dict, title: str):
    """The terminal table of an evaluation, by task (a regression or multilabel one shows windows and tracks)."""
    from ..report import multilabel_table, regression_table, summary_table

    if metrics.get("task") == "regression":
        return regression_table({**metrics["window_scores"], "track": metrics}, title)
    if metrics.get("task") == "multilabel":
        block = {**metrics["window_scores"], "n_windows": metrics["n_windows"], "n_tracks": metrics["n_tracks"]}
        return multilabel_table({**block, "track": metrics}, title)
    return summary_table(metrics, title)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(command)
