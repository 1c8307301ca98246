"""`mer-fastai ensemble`: several runs as one model file that averages their probabilities."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console


def command(
    runs: list[Path] = typer.Argument(
        ...,
        help="Run folders or model files (at least two) with the same task and classes; their architectures and "
        "spectrograms may differ (each input is computed from the audio).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Model file to write (.safetensors), or a folder for model.safetensors."
    ),
) -> None:
    """Combine trained runs into ONE model file: predict, evaluate and export use the mean of their probabilities."""
    from ..evaluation.ensemble import ensemble_models

    result = ensemble_models(runs, out)
    meta = result.meta
    inputs = f", {len(meta.input_groups)} inputs" if meta.is_mixed else ""
    console.print(
        f"ensemble: [bold]{result.model_file}[/] ({meta.arch_summary}{inputs}, classes {', '.join(meta.classes)})"
    )


def register(app: typer.Typer) -> None:
    app.command("ensemble")(command)
