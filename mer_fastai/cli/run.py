"""`mer-fastai run RECIPE`: run or resume an experiment grid."""

from __future__ import annotations

from pathlib import Path

import typer

from ..choices import EXECUTORS
from ..errors import MerError
from ..training.config import ARCH_HELP
from . import options


def command(
    recipe: str = typer.Argument(..., help="Built-in recipe name (see `mer-fastai recipes`) or a YAML path."),
    feature: list[str] = typer.Option(None, "--feature", "-f", help="Only these tasks (repeatable)."),
    arch: list[str] = typer.Option(None, "--arch", "-a", help=f"Only these architectures (repeatable). {ARCH_HELP}"),
    mode: list[str] = typer.Option(None, "--mode", "-m", help="Only these modes: freeze, whole, partial (repeatable)."),
    set_: list[str] = typer.Option(
        None,
        "--set",
        help="Override a recipe key, dotted, e.g. epochs=5 or datasets.small.audio=DIR (repeatable).",
    ),
    augment_dir: list[Path] = typer.Option(
        None,
        "--augment-dir",
        help="Extra training images in <dir>/<class>/ added as an augmentation variant.",
    ),
    executor: str = typer.Option("local", "--executor", help=f"Where cells run: {', '.join(EXECUTORS)}."),
    address: str = typer.Option(
        None, "--address", help="With --executor ray: 'auto' or ray://HOST:PORT of a cluster (default: a local Ray)."
    ),
    cpus_per_cell: int = typer.Option(1, "--cpus-per-cell", help="With --executor ray: CPUs reserved per cell."),
    track: str = options.Track,
    tracking_uri: str = options.TrackingUri,
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: runs/<experiment>)."),
) -> None:
    """Run an experiment recipe's grid; rerunning skips finished cells and retries failed ones."""
    from ..experiments.recipe import load_recipe
    from ..experiments.runner import run_recipe

    if address and executor != "ray":
        raise MerError("--address is for --executor ray")
    loaded = load_recipe(recipe, set_, feature, arch, mode)
    summary = run_recipe(
        loaded,
        out or Path("runs") / loaded.experiment,
        augment_dirs=augment_dir,
        executor=executor,
        executor_options={"address": address, "cpus_per_cell": cpus_per_cell} if executor == "ray" else None,
        track=track,
        tracking_uri=tracking_uri,
    )
    if summary.failed:
        first = next(iter(summary.failed.items()))
        raise MerError(
            f"{len(summary.failed)} cell(s) failed (first: {first[0]}: {first[1]}); "
            "fix the cause and rerun the same command to retry them"
        )


def register(app: typer.Typer) -> None:
    app.command("run")(command)
