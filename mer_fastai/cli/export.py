"""`mer-fastai export`: a checked model file (and optionally ONNX) out of a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console


def command(
    run_dir: Path = typer.Argument(..., help="A run folder made by `mer-fastai train`, or a model file to re-check."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Model file to write (.safetensors), or a folder for model.safetensors."
    ),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help="Also write <out>.onnx (input 'image' N×3×size×size, or a musicnn model's N×3×96×187, output 'logits': "
        "the raw head outputs — class logits, mood logits, or a regression model's values); needs onnx. Not for an "
        "ensemble of several inputs.",
    ),
    accept_unverified: bool = typer.Option(
        False,
        "--accept-unverified",
        help="Accept a model file without a checksum (written by an older mer-fastai) and write it with one; "
        "only for files you trust. Files that have a checksum are always verified.",
    ),
) -> None:
    """Write a validated, self-describing model file with the run's metrics; optionally ONNX too."""
    from ..inference.export import export_model, input_shape

    result = export_model(run_dir, out, onnx=onnx, accept_unverified=accept_unverified)
    meta = result.meta
    if result.note:
        console.print(f"[yellow]note:[/] {result.note}; its scores were left out of the exported file", soft_wrap=True)
    kind = f"ensemble of {meta.arch_summary}" if meta.is_ensemble else meta.arch
    what = meta.task.facts.names_key  # classes, targets or moods
    console.print(f"model file: [bold]{result.model_file}[/] ({kind}, {meta.task}, {what} {', '.join(meta.classes)})")
    if result.onnx_file:
        height, width = input_shape(meta)
        console.print(f"ONNX: [bold]{result.onnx_file}[/] (input 'image' N×3×{height}×{width}, output 'logits')")


def register(app: typer.Typer) -> None:
    app.command("export")(command)
