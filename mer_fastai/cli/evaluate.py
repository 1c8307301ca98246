"""`mer-fastai evaluate`: track-level scores of a saved model on labelled audio."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .._plumbing.progress import console
from ..data.labelsource import LabelSource
from . import options
from .predict import Aggregate, Bs, Device, Hop, Model, Precision, Window, Workers


@options.with_label_options(
    "labels", "group_by", "id_column", "label_column", "cuts", "skip_unlabeled", "targets", "threshold",
    helps={
        "group_by": "Labels column copied to predictions.csv as each track's group (e.g. Artist).",
        "targets": "Regression or multilabel model: the labels column of each of its targets or moods, in the model's "
        "order (repeatable; default: the columns named as the model's targets). A multilabel model may take "
        "--label-column (';'-separated moods) instead.",
        "threshold": "Multilabel model with vote-share --target columns: a mood holds when its share is at least this "
        "times the clip's top share (default 0.5, as prepare).",
    },
)  # fmt: skip
def command(
    model: Path = Model,
    audio_dir: Path = typer.Argument(..., help="Folder of labelled audio clips (searched recursively)."),
    source: LabelSource = ...,  # the label options (`options.with_label_options`)
    feature: str = options.feature_option(required=False),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder for metrics.json, the report, the confusion matrix and predictions.csv.",
    ),
    window: float = Window,
    hop: float = Hop,
    aggregate: str = Aggregate,
    bs: int = Bs,
    device: str = Device,
    precision: str = Precision,
    workers: int = Workers,
) -> None:
    """Score a model's tracks against known labels: accuracy, macro-F1, report, confusion matrix; a regression
    model's CCC, r, R², RMSE, MAE with scatter and circumplex plots; a multilabel model's F1, mAP, per mood."""
    from ..api.evaluation import evaluate

    result = evaluate(
        model,
        audio_dir,
        out,
        labels=source,
        feature=feature,
        window=window,
        hop=hop,
        aggregate=aggregate,
        bs=bs,
        device=device,
        precision=precision,
        workers=workers,
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
    """The terminal table of an evaluation, as its task shows it (a regression or multilabel one: windows and
    tracks; a mixed-input ensemble's: tracks only)."""
    from ..report.results import row_task
    from ..report.views.registry import views_of

    return views_of(row_task(metrics)).evaluation_table(metrics, title)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(command)
