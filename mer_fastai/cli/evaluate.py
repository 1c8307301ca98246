"""`mer-fastai evaluate`: track-level scores of a saved model on labelled audio."""

from __future__ import annotations

from pathlib import Path

import typer

from ..evaluate import evaluate
from ..labels import FEATURES
from ..progress import console
from ..report import summary_table
from .predict import Aggregate, Bs, Device, Hop, Model, Window
from .prepare import parse_cuts


def command(
    model: Path = Model,
    audio_dir: Path = typer.Argument(..., help="Folder of labelled audio clips (searched recursively)."),
    labels: Path = typer.Option(
        None,
        "--labels",
        "-l",
        help="Ratings/quadrant/generic CSV; omit when clips sit in one folder per class.",
    ),
    feature: str = typer.Option(
        None,
        "--feature",
        "-f",
        help=f"Task: {', '.join(FEATURES)} or a --label-column name (default: the model's).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder for metrics.json, the report, the confusion matrix and predictions.csv.",
    ),
    group_by: str = typer.Option(
        None,
        "--group-by",
        help="Labels column copied to predictions.csv as each track's group (e.g. Artist).",
    ),
    id_column: str = typer.Option(None, "--id-column", help="Generic CSV: column holding the clip id (file stem)."),
    label_column: str = typer.Option(None, "--label-column", help="Generic CSV: column holding the class or rating."),
    cuts: str = typer.Option(
        None, "--cuts", help="Explicit cut points for 3 levels, e.g. '3.5,6.5' (default: tertiles)."
    ),
    skip_unlabeled: bool = typer.Option(False, "--skip-unlabeled", help="Skip audio files with no row in --labels."),
    window: float = Window,
    hop: float = Hop,
    aggregate: str = Aggregate,
    bs: int = Bs,
    device: str = Device,
) -> None:
    """Score a model's track labels against known labels: accuracy, macro-F1, report, confusion matrix."""
    result = evaluate(
        model,
        audio_dir,
        out,
        labels=labels,
        feature=feature,
        group_by=group_by,
        id_column=id_column,
        label_column=label_column,
        cuts=parse_cuts(cuts),
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
            console.print(f"  [yellow]{item.file}: {item.reason}", soft_wrap=True, highlight=False)
    console.print(f"report folder: [bold]{result.out_dir}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(command)
