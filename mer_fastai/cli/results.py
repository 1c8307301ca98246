"""`mer-fastai results DIR`: reprint the results tables of a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console


def command(out: Path = typer.Argument(..., help="Output folder of `mer-fastai run`.")) -> None:
    """Reprint the results tables (and where results.md and the heatmap are)."""
    from ..experiments.runner import show_results
    from ..runs.layout import HEATMAP, RESULTS_MD

    rows = show_results(out)
    console.print(f"{len(rows)} result row(s); tables in {out / RESULTS_MD}, heatmap in {out / HEATMAP}")


def register(app: typer.Typer) -> None:
    app.command("results")(command)
