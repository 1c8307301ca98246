"""`mer-fastai report DIR`: one offline HTML page for a run, cross-validation or grid folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ..progress import console


def command(
    folder: Path = typer.Argument(
        ..., help="A run folder (`train`), a cross-validation folder (`cv`) or a grid folder (`run`)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="The HTML file to write (default: report.html inside the folder)."
    ),
) -> None:
    """Write one self-contained HTML report: settings, scores, confusion matrices, curves, worst mistakes."""
    from ..html_report import write_report

    console.print(f"report: [bold]{write_report(folder, out)}")


def register(app: typer.Typer) -> None:
    app.command("report")(command)
