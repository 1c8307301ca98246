"""`mer-fastai demo`: the end-to-end demo on synthetic music."""

from __future__ import annotations

from pathlib import Path

import typer

from ..training.config import ARCH_HELP
from . import options


def command(
    out: Path = options.out_option("demo-output", "the demo's audio, data set and run"),
    arch: str = typer.Option("alexnet", "--arch", "-a", help=ARCH_HELP),
    epochs: int = typer.Option(12, "--epochs", "-e", help="Training epochs."),
    size: int = typer.Option(128, "--size", help="Training resolution in pixels."),
    clips: int = typer.Option(20, "--clips", help="Synthetic clips per class."),
    weights: str = typer.Option("none", "--weights", help="Starting weights (none needs no download)."),
    task: str = typer.Option(
        "classification",
        "--task",
        help="classification (the 5 emotions), regression (continuous valence and energy, with scatter and "
        "circumplex plots) or multilabel (5 moods from listeners' vote shares, several per clip, with the per-mood "
        "chart).",
    ),
) -> None:
    """Synthesise a small emotion data set, prepare it, train a model and show the report."""
    from ..experiments.demo import run_demo

    run_demo(out, arch=arch, epochs=epochs, size=size, clips_per_class=clips, weights=weights, task=task)


def register(app: typer.Typer) -> None:
    app.command("demo")(command)
