"""`mer-fastai cv`: K-fold cross-validation of one training setting on one data set."""

from __future__ import annotations

from pathlib import Path

import typer

from ..training.config import TRAIN, TrainConfig
from ..training.options import with_train_options
from . import options


@with_train_options(TRAIN)
def command(
    data_dir: Path = options.DataDir,
    config: TrainConfig = None,  # one option per training setting (see mer_fastai/training/config.py)
    folds: int = typer.Option(5, "--folds", "-k", help="Number of folds K (grouped and stratified over clips)."),
    repeats: int = typer.Option(1, "--repeats", help="Repeat the K folds R times with other fold assignments."),
    ensemble: bool = typer.Option(
        True, "--ensemble/--no-ensemble", help="Also write the fold models as one model file OUT/ensemble.safetensors."
    ),
    refit: bool = typer.Option(
        False,
        "--refit/--no-refit",
        help="Also train one model on every cross-validated clip, with the folds' settings and epochs, into "
        "OUT/refit/ (no validation scores: the out-of-fold scores are its expected performance).",
    ),
    out: Path = options.out_option("cv", "the cross-validation (folds/<k>/ runs, cv.json, out-of-fold predictions)"),
) -> None:
    """Train one model per fold; report mean ± sd, a 95 % interval and the out-of-fold (pooled) scores."""
    from ..api.training import run_cv
    from ..runs.inputs import refuse_training_out

    refuse_training_out(out, data_dir, config)
    run_cv(data_dir, config, out, folds, repeats, ensemble=ensemble, refit=refit)


def register(app: typer.Typer) -> None:
    app.command("cv")(command)
