"""`mer-fastai report DIR`: one offline HTML page for a run, cross-validation or grid folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console
from ..errors import MerError

HTML_SUFFIXES = (".html", ".htm")


def command(
    folder: Path = typer.Argument(
        ..., help="A run folder (`train`), a cross-validation folder (`cv`) or a grid folder (`run`)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="The HTML file to write, ending in .html (default: report.html inside the folder)."
    ),
) -> None:
    """Write one self-contained HTML report: settings, scores, confusion matrices, curves, worst mistakes."""
    from ..report.html.page import write_report

    if out is not None and not out.is_dir() and out.suffix.lower() not in HTML_SUFFIXES:
        raise MerError(
            f"--out {out}: the report is an HTML page and must not replace a file it reads; name a file ending in "
            f".html (e.g. {out.with_suffix('.html')})"
        )
    console.print(f"report: [bold]{write_report(folder, out)}")


def register(app: typer.Typer) -> None:
    app.command("report")(command)
