"""`mer-fastai gan train|generate`: artificial spectrograms to augment the training split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from .._plumbing.progress import console
from ..choices import GAN_BACKENDS
from . import options

if TYPE_CHECKING:
    from ..gan.train import GanResult

gan_app = typer.Typer(
    help="GAN augmentation: train a class-conditional GAN on a data set's training images, generate more.",
    no_args_is_help=True,
)

Classes = typer.Option(None, "--class", "-c", help="Class to use (repeatable; default: every class).")


@gan_app.command("train")
def train_command(
    data_dir: Path = options.DataDir,
    classes: list[str] = Classes,
    backend: str = typer.Option(
        "diffaug",
        "--backend",
        "-b",
        help=f"{' or '.join(GAN_BACKENDS)} (needs an NVIDIA GPU and --stylegan-dir).",
    ),
    out: Path = options.out_option("gan-run", "the GAN run (network, gan.json, metrics.json, samples.png)"),
    steps: int = typer.Option(2000, "--steps", help="diffaug: training steps (batches)."),
    size: int = typer.Option(
        64, "--size", help="Square training resolution, a power of two (images are resized back)."
    ),
    bs: int = typer.Option(32, "--bs", help="Batch size."),
    seed: int = options.Seed,
    kimg: int = typer.Option(
        None,
        "--kimg",
        help="stylegan2-ada: training length in thousands of images (default: steps × bs / 1000).",
    ),
    stylegan_dir: Path = typer.Option(
        None, "--stylegan-dir", help="stylegan2-ada: a checkout of github.com/NVlabs/stylegan2-ada-pytorch."
    ),
    stylegan_python: str = typer.Option(
        None,
        "--stylegan-python",
        help="stylegan2-ada: Python interpreter with its requirements (default: this one).",
    ),
) -> None:
    """Train a class-conditional GAN on the training split only, then score it and save sample images."""
    from ..gan.train import train_gan
    from ..runs.inputs import refuse_training_out

    refuse_training_out(out, data_dir)
    result = train_gan(
        data_dir,
        out,
        classes,
        backend,
        steps=steps,
        size=size,
        bs=bs,
        seed=seed,
        kimg=kimg,
        stylegan_dir=stylegan_dir,
        stylegan_python=stylegan_python,
    )
    console.print(quality_table(result))
    console.print(f"GAN run: [bold]{result.out}[/]; next: mer-fastai gan generate {result.out} --n N --out DIR")


@gan_app.command("generate")
def generate_command(
    gan_run: Path = typer.Argument(..., help="A run folder made by `mer-fastai gan train`."),
    n: int = typer.Option(..., "--n", "-n", help="Images to generate per class."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <class>/*.png (outside the data set)."),
    classes: list[str] = Classes,
    seed: int = typer.Option(0, "--seed", help="Random seed; another seed gives other images (names differ too)."),
    stylegan_python: str = typer.Option(
        None,
        "--stylegan-python",
        help="stylegan2-ada: Python interpreter (default: the one used in training).",
    ),
) -> None:
    """Write N generated spectrograms per class; add them to training with `train --augment-dir OUT`."""
    from ..gan.generate import generate_images

    written = generate_images(gan_run, n, out, classes, seed=seed, stylegan_python=stylegan_python)
    for name, paths in written.items():
        console.print(f"{name}: {len(paths)} images in {out / name}")


def quality_table(result: GanResult) -> Table:
    """Quality scores per class (lower is better)."""
    quality = result.metrics["quality"]
    metrics = [name for name in ("fd_proxy", "fid") if name in quality]
    table = Table(title=f"{result.backend} GAN vs real training images (lower is better)", title_justify="left")
    table.add_column("class")
    table.add_column("real", justify="right")
    for name in metrics:
        table.add_column(name, justify="right")
    for name in result.classes:
        scores = [quality[metric]["per_class"].get(name) for metric in metrics]
        cells = ["-" if score is None else f"{score:.3f}" for score in scores]
        table.add_row(name, str(quality["n_real"][name]), *cells)
    table.add_section()
    table.add_row("[bold]all", str(sum(quality["n_real"].values())), *(f"{quality[m]['overall']:.3f}" for m in metrics))
    return table


def register(app: typer.Typer) -> None:
    app.add_typer(gan_app, name="gan")
