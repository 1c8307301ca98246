"""`mer-fastai ensemble`: several runs as one model file that averages their probabilities."""

from __future__ import annotations

from pathlib import Path

import typer

from ..progress import console


def command(
    runs: list[Path] = typer.Argument(
        ..., help="Run folders or model files (at least two) with the same classes, spectrogram settings and input."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Model file to write (.safetensors), or a folder for model.safetensors."
    ),
) -> None:
    """Combine trained runs into ONE model file: predict, evaluate and export use the mean of their probabilities."""
    from ..ensemble import ensemble_models

    result = ensemble_models(runs, out)
    meta = result.meta
    console.print(
        f"ensemble: [bold]{result.model_file}[/] ({len(meta.members)} × {meta.arch}, classes {', '.join(meta.classes)})"
    )


def register(app: typer.Typer) -> None:
    app.command("ensemble")(command)
