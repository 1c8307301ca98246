"""Options shared by several subcommands, defined once."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data.labels import FEATURES
from ..errors import MerError
from ..training.config import ARCH_HELP as ARCH_HELP  # re-exported: the help of every --arch
from ..training.config import cli_option

# Training settings other commands share: declared once, in TrainConfig (mer_fastai/config.py).
Seed = cli_option("seed")
Track = cli_option("track")
TrackingUri = cli_option("tracking_uri")
DataDir = typer.Argument(..., help="A data set folder made by `mer-fastai prepare`.", exists=False)


def out_option(default: str, what: str) -> Path:
    return typer.Option(Path(default), "--out", "-o", help=f"Folder for {what}.")


# Labels: how `prepare` and `evaluate` read the labels of audio clips.
Labels = typer.Option(
    None, "--labels", "-l", help="Ratings/quadrant/generic CSV; omit when clips sit in one folder per class."
)
IdColumn = typer.Option(
    None,
    "--id-column",
    help="Generic CSV: column holding the clip id (path relative to the audio folder, or file stem).",
)
LabelColumn = typer.Option(None, "--label-column", help="Generic CSV: column holding the class or rating.")
Cuts = typer.Option(None, "--cuts", help="Explicit cut points for 3 levels, e.g. '3.5,6.5' (default: tertiles).")
SkipUnlabeled = typer.Option(
    False,
    "--skip-unlabeled",
    help="Leave out audio files with no row in --labels, or whose label cell is blank/NaN/not a number "
    "(reported as skipped).",
)


def feature_option(required: bool) -> str:
    """--feature: needed by `prepare` (but for regression); `evaluate` defaults to the model's task."""
    if required:
        return typer.Option(
            None,
            "--feature",
            "-f",
            help=f"Task: {', '.join(FEATURES)} (or any name with --label-column); with --target optional "
            "(default: the targets joined by '+', e.g. valence+energy).",
        )
    return typer.Option(
        None, "--feature", "-f", help=f"Task: {', '.join(FEATURES)} or a --label-column name (default: the model's)."
    )


def group_by_option(purpose: str) -> str:
    """--group-by: a labels column, used as `purpose` says."""
    return typer.Option(None, "--group-by", help=f"Labels column {purpose}.")


def parse_cuts(text: str | None) -> list[float] | None:
    """The two sorted cut points of --cuts, or None when it is not given."""
    if not text:
        return None
    try:
        values = sorted(float(part) for part in text.split(","))
    except ValueError as exc:
        raise MerError(f"--cuts must be two comma-separated numbers such as 3.5,6.5 (got {text!r})") from exc
    if len(values) != 2:
        raise MerError(f"--cuts needs exactly two cut points for three levels (got {text!r})")
    return values
