"""`mer-fastai predict`: label audio files of any length with a saved model."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._plumbing.progress import MessageConsole, console
from ..choices import AGGREGATES, FORMATS

if TYPE_CHECKING:
    from ..inference.tracks import Predictions
    from ..tasks.base import Task

Model = typer.Argument(..., help="A model file (.safetensors) or a run folder made by `mer-fastai train`.")
Window = typer.Option(None, "--window", help="Window length in seconds (default: the model's training window).")
Hop = typer.Option(
    None,
    "--hop",
    help="Window hop in seconds (default: the training hop, or the window length with --window).",
)
AGGREGATE_HELP = {  # what each of choices.AGGREGATES does (scores.aggregate)
    "mean": "the class with the highest mean window probability",
    "vote": "the class most windows predict (ties: the higher mean probability)",
    "max": "the class with the single highest window probability",
}
Aggregate = typer.Option(
    "mean",
    "--aggregate",
    help="How a track's label comes from its windows: "
    + "; ".join(f"{name}: {AGGREGATE_HELP[name]}" for name in AGGREGATES)
    + ". Default: mean.",
)
Bs = typer.Option(32, "--bs", help="Windows per inference batch.")
Device = typer.Option("auto", "--device", help="auto (GPU if present), cpu, cuda or cuda:N.")
Precision = typer.Option(
    "fp32",
    "--precision",
    help="Arithmetic of the network: fp32 (default: exact); bf16 or int8 (faster on CPUs with AVX-512 BF16/AMX or "
    "VNNI, within 0.02 of fp32's probabilities); auto: the fastest of them that passed its check against fp32 "
    "on this model and CPU (recorded in the user cache).",
)
Workers = typer.Option(
    1,
    "--workers",
    help="Processes decoding audio files while the network runs on batches of their windows (default 1: "
    "decode, then run, in turn; more helps where the network does not need every core, e.g. on a GPU).",
)


def command(
    model: Path = Model,
    audio: list[Path] = typer.Argument(
        ..., help="Audio files or folders (searched recursively), any format and length."
    ),
    window: float = Window,
    hop: float = Hop,
    aggregate: str = Aggregate,
    bs: int = Bs,
    fmt: str = typer.Option(
        None,
        "--format",
        help=f"Output format: {', '.join(FORMATS)} (default: from the --out extension .json/.csv; another "
        "extension needs --format; without --out: json on standard output).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="File for the predictions; with --format but no --out they go to standard output.",
    ),
    device: str = Device,
    precision: str = Precision,
    workers: int = Workers,
) -> None:
    """Predict each track's emotion class (or its moods, or its target values), window by window, and aggregate
    per track."""
    from ..inference.predict import Predictor
    from ..inference.track_head import windows_notes
    from ..inference.tracks import MIXED_NOTE
    from ..inference.writing import check_predictions_out, output_format, render_predictions, write_predictions
    from ..runs.inputs import refuse_input_out

    chosen = output_format(out, fmt) if out or fmt else None
    if out is not None:
        refuse_input_out([out], model, audio)
        check_predictions_out(out)
    predictor = Predictor.load(model, device=device, bs=bs, precision=precision, workers=workers)
    predictions = predictor.predict_many(audio, window=window, hop=hop, aggregate=aggregate, progress=True)
    if out is not None:  # the file first: a terminal or pipe gone meanwhile loses none of it
        write_predictions(predictions, predictor, out, chosen)
    if chosen and out is None:
        sys.stdout.write(render_predictions(predictions, predictor, chosen))
    else:  # the table: the result itself without --out (a closed stdout ends the command), else a courtesy
        table = Console() if out is None else MessageConsole()
        table.print(predictions_table(predictions, predictor.classes, predictor.task))
    if out is not None:
        console.print(f"{len(predictions)} track(s) written to [bold]{out}")
    if predictions.inputs:
        console.print(f"note: {MIXED_NOTE}", soft_wrap=True, highlight=False)
    for note in windows_notes(predictor, predictions.window, predictions.hop):
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    for item in predictions.skipped:
        console.print(f"  [yellow]skipped[/] {escape(f'{item.file}: {item.reason}')}", soft_wrap=True, highlight=False)
    if predictions.skipped:
        total = len(predictions) + len(predictions.skipped)
        console.print(f"[yellow]skipped {len(predictions.skipped)} of {total} file(s)")


def predictions_table(predictions: Predictions, classes: list[str], task: Task) -> Table:
    """One row per track, named by its path below the tracks' common folder (in the title): its label, the label's
    probability, its windows and every class's probability; a multilabel model's moods, windows and every mood's
    probability; a regression model's windows and values (a mixed-input ensemble's windows: the count per input,
    ";"-joined)."""
    rules = task
    paths = [os.path.abspath(track.file) for track in predictions]  # files given relative and absolute alike
    folder = os.path.commonpath([os.path.dirname(path) for path in paths]) if paths else ""
    where = f" in {folder}" if folder else ""
    table = Table(
        title=f"{len(predictions)} track(s){where} · {predictions.windows_text()} · {predictions.aggregate}",
        title_justify="left",
    )
    table.add_column("file", overflow="fold")
    for name in rules.facts.label_columns:  # a class, or the moods
        table.add_column(name, style="bold")
    chosen = ("p(label)",) if rules.facts.chooses_one_label else ()  # the probability of the one label chosen
    for name in (*chosen, "windows", *classes):
        table.add_column(name, justify="right")
    for track, path in zip(predictions, paths, strict=True):
        table.add_row(
            os.path.relpath(path, folder),  # its path below the tracks' folder: file names may repeat
            *(track.label or "–" for _ in rules.facts.label_columns),
            *(f"{track.outputs[track.label]:.3f}" for _ in chosen),
            track.n_windows,
            *(f"{track.outputs[name]:.3f}" for name in classes),
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("predict")(command)
