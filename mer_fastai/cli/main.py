"""The `mer-fastai` entry point: registers the subcommands and turns errors into one line."""

from __future__ import annotations

import os
import sys
import warnings

import typer

from ..errors import MerError
from ..progress import console
from . import baseline, demo, evaluate, export, gan, lrfind, predict, prepare, recipes, results, run, train

app = typer.Typer(
    name="mer-fastai",
    help="Music emotion recognition with fastai: spectrogram data sets, transfer learning, experiment recipes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
state = {"debug": False}


@app.callback()
def options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """Global options."""
    state["debug"] = debug
    if not debug:
        warnings.filterwarnings("ignore")


for module in (prepare, lrfind, train, run, recipes, results, demo, predict, evaluate, export, baseline, gan):
    module.register(app)


def main() -> None:
    """Run the CLI; a user error is one red line on stderr and exit status 2."""
    debug = "--debug" in sys.argv or os.environ.get("MER_FASTAI_DEBUG") == "1"
    try:
        app()
    except MerError as exc:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished results are kept; rerun the command to resume")
        sys.exit(130)
