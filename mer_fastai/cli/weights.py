"""`mer-fastai weights get musicnn`: pretrained music weights, fetched once into the user cache."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console
from ..bounds import quote
from ..errors import MerError

weights_app = typer.Typer(help="Pretrained music weights: fetch them once into the user cache.", no_args_is_help=True)
SOURCES = ("musicnn",)


@weights_app.command("get")
def get_command(
    name: str = typer.Argument(..., help=f"Which weights: {', '.join(SOURCES)}."),
    source: Path = typer.Option(
        None,
        "--from",
        help="The musicnn-0.1.0 wheel, a folder holding it, or the unpacked wheel (for machines without internet); "
        "default: download it with `pip download --no-deps musicnn==0.1.0`.",
    ),
) -> None:
    """Convert the musicnn taggers (MSD and MTT, musicnn and VGG) to safetensors in $MER_FASTAI_CACHE/musicnn
    (default ~/.cache/mer-fastai/musicnn), checksummed; no TensorFlow needed. Pons & Serra 2019, ISC licence."""
    if name not in SOURCES:
        raise MerError(f"unknown weights {quote(name)}; choose one of {', '.join(SOURCES)}")
    from ..models.musicnn.weights import get_weights

    for model, path in get_weights(source).items():
        console.print(f"musicnn {model}: [bold]{path}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
