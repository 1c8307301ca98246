"""Options shared by several subcommands, defined once."""

from __future__ import annotations

from pathlib import Path

import typer

from ..archs import ARCHS

ARCH_HELP = f"Architecture: {', '.join(ARCHS)} or timm/<model>."

Arch = typer.Option(..., "--arch", "-a", help=ARCH_HELP)
Mode = typer.Option("freeze", "--mode", "-m", help="freeze: only the head learns; whole: every layer learns.")
Weights = typer.Option(
    "imagenet",
    "--weights",
    help="Starting weights: imagenet, none, or a model file / run folder of an earlier run.",
)
Bs = typer.Option(32, "--bs", help="Batch size.")
Size = typer.Option(None, "--size", help="Training resolution in pixels (default: the architecture's, e.g. 224).")
Seed = typer.Option(42, "--seed", help="Random seed.")
TrainBn = typer.Option(False, "--train-bn", help="In freeze mode, keep BatchNorm layers of the body trainable.")
Workers = typer.Option(
    None, "--workers", help="Data-loading processes of the per-image pipeline (--no-cache; default: up to 2)."
)
Cache = typer.Option(
    True,
    "--cache/--no-cache",
    help="Decode every spectrogram once into memory and normalise per batch; --no-cache re-reads the PNGs "
    "every epoch (always so with --augment study).",
)
FeatureCache = typer.Option(
    True,
    "--feature-cache/--no-feature-cache",
    help="Freeze mode without --train-bn or augmentation: run the frozen body once over the images and "
    "train only the head on its cached features (the same training, a fraction of the time).",
)
ChannelsLast = typer.Option(
    True,
    "--channels-last/--no-channels-last",
    help="Keep convolution weights in channels-last memory format (faster on CPU for the table's CNNs).",
)
DataDir = typer.Argument(..., help="A data set folder made by `mer-fastai prepare`.", exists=False)


def out_option(default: str, what: str) -> Path:
    return typer.Option(Path(default), "--out", "-o", help=f"Folder for {what}.")


Track = typer.Option(None, "--track", help="Log the run to an experiment tracker: mlflow (needs mer-fastai[mlflow]).")
TrackingUri = typer.Option(
    None, "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlruns)."
)
