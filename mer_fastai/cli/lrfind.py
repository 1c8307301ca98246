"""`mer-fastai lrfind`: the learning-rate range test."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console
from ..training.config import LRFIND, TrainConfig
from ..training.options import with_train_options
from . import options


@with_train_options(LRFIND)
def command(
    data_dir: Path = options.DataDir,
    config: TrainConfig = None,  # one option per setting lrfind offers (see mer_fastai/training/config.py)
    out: Path = options.out_option("lrfind", "lr_find.png and lr_find.json"),
) -> None:
    """Find a learning rate: save the loss-vs-LR plot and print the suggestions."""
    from ..api.training import find_lr
    from ..runs.inputs import refuse_training_out

    refuse_training_out(out, data_dir, config)
    result = find_lr(data_dir, config, out)
    for name, value in result.suggestions.items():
        console.print(f"{name:>8}: {value:.2e}")
    console.print(f"suggested learning rate: [bold]{result.suggestion:.2e}[/] (valley); plot: {result.plot}")


def register(app: typer.Typer) -> None:
    app.command("lrfind")(command)
