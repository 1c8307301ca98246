"""`mer-fastai baseline`: hand-crafted features and classic classifiers, the study's reference."""

from __future__ import annotations

from pathlib import Path

import typer

from .._plumbing.progress import console
from ..choices import CLASSIFIERS, FEATURE_SETS, PROBE_LAYERS
from ..errors import MerError
from . import options
from .predict import Aggregate


def command(
    data_dir: Path = options.DataDir,
    out: Path = options.out_option("baseline", "<classifier>/metrics.json, its prediction CSVs and baseline.csv"),
    classifiers: list[str] = typer.Option(
        None,
        "--classifier",
        help=f"{', '.join(CLASSIFIERS)} (repeatable; default: all five; linear: logistic regression, ridge "
        "for regression targets).",
    ),
    features: str = typer.Option(
        "handcrafted",
        "--features",
        help=f"Window features: {', '.join(FEATURE_SETS)}, or several joined with '+' (concatenated, standardised), "
        "e.g. musicnn-msd+handcrafted+melodic. musicnn-*: mean and sd over 3 s patches of the frozen network's "
        "--layer. Each set is cached in --out.",
    ),
    layer: str = typer.Option(
        "penultimate", "--layer", help=f"Probed musicnn layer: {', '.join(PROBE_LAYERS)} (with --features musicnn-*)."
    ),
    seed: int = options.Seed,
    aggregate: str = Aggregate,
    workers: int = typer.Option(
        None,
        "--workers",
        help="Parallel processes for feature extraction and the tree ensembles (default: all cores).",
    ),
    folds: int = typer.Option(
        None,
        "--folds",
        "-k",
        help="Cross-validate on the K grouped, stratified folds `mer-fastai cv` deals at the same --seed "
        "(mean ± sd over the folds) instead of scoring the data set's own split.",
    ),
    repeats: int = typer.Option(1, "--repeats", help="With --folds: deal the K folds R times, as `cv` does."),
    save_model: bool = typer.Option(
        False,
        "--save-model",
        help="Also write the fitted linear model as a model file (<out>/<row>/model.safetensors, e.g. "
        "<out>/linear-musicnn-msd.pooled/; with --folds, one per fold) that predict, evaluate and ensemble read; "
        "needs --classifier linear and --features handcrafted, musicnn-msd or musicnn-mtt (or them joined by '+').",
    ),
) -> None:
    """Score classic classifiers on hand-crafted audio features, or linear probes of a frozen pretrained network,
    of the data set's own windows and split."""
    from ..evaluation.baseline.classic import baseline_table, run_baseline
    from ..runs.inputs import refuse_training_out
    from ..runs.layout import BASELINE_CSV, FOLDS_DIR, MODEL_FILE

    refuse_training_out(out, data_dir)
    chosen = {"features": features, "layer": layer, "save_model": save_model}
    if folds is None:
        if repeats != 1:
            raise MerError("--repeats needs --folds (e.g. --folds 5)")
        rows = run_baseline(data_dir, out, classifiers, seed, aggregate=aggregate, workers=workers, **chosen)
    else:
        from ..evaluation.baseline.folds import cross_validate_baseline

        rows = cross_validate_baseline(
            data_dir,
            out,
            folds,
            repeats,
            classifiers=classifiers,
            seed=seed,
            aggregate=aggregate,
            workers=workers,
            **chosen,
        ).rows
    console.print(baseline_table(rows))
    console.print(f"results: {out / BASELINE_CSV} (features cached in {out}/features*.npz)")
    if save_model:
        from ..evaluation.baseline.featuresets import parse_features, row_name

        row = row_name("linear", parse_features(features, layer))
        where = out / (f"{FOLDS_DIR}/<k>" if folds is not None else "") / row / MODEL_FILE
        console.print(f"model file{'s' if folds is not None else ''}: {where} (predict, evaluate and ensemble read it)")


def register(app: typer.Typer) -> None:
    app.command("baseline")(command)
