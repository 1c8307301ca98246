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
    window: float = Window,
    hop: float = Hop,
    aggregate: str = Aggregate,
    bs: int = Bs,
    device: str = Device,
) -> None:
    """Score a model's track labels against known labels: accuracy, macro-F1, report, confusion matrix."""
    from ..evaluate import evaluate
    from ..report import summary_table

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
        bs=bs,
        device=device,
    )
    metrics = result.metrics
    console.print(
        summary_table(metrics, f"{metrics['feature']} · {metrics['n_tracks']} tracks ({aggregate} of windows)")
    )
    console.print(f"window accuracy {metrics['window_accuracy']:.3f} over {metrics['n_windows']} windows")
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)} file(s):")
        for item in result.skipped:
            console.print(f"  [yellow]{escape(f'{item.file}: {item.reason}')}", soft_wrap=True, highlight=False)
    for note in metrics["notes"]:
        console.print(f"  [yellow]{escape(note)}", soft_wrap=True, highlight=False)
    console.print(f"report folder: [bold]{result.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(command)
