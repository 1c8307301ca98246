"""`mer-fastai train`: fit one architecture on one data set."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..data import AUGMENTS
from ..distributed import processes_to_launch, relaunch, without_options
from ..train import MONITORS, TrainConfig, train
from . import options


def command(
    data_dir: Path = options.DataDir,
    arch: str = options.Arch,
    mode: str = options.Mode,
    epochs: int = typer.Option(20, "--epochs", "-e", help="Maximum epochs (one-cycle schedule)."),
    lr: str = typer.Option("auto", "--lr", help="Peak learning rate, or 'auto' to take the lr_find suggestion."),
    bs: int = options.Bs,
    size: int = options.Size,
    weights: str = options.Weights,
    seed: int = options.Seed,
    train_bn: bool = options.TrainBn,
    augment: str = typer.Option("none", "--augment", help=f"Training augmentation: {', '.join(AUGMENTS)}."),
    balanced: bool = typer.Option(False, "--balanced", help="Class-balanced weighted sampling of training items."),
    augment_dir: list[Path] = typer.Option(
        None, "--augment-dir", help="Extra training images in <dir>/<class>/ (e.g. GAN output); repeatable."
    ),
    monitor: str = typer.Option(
        "accuracy", "--monitor", help=f"Score that picks the kept epoch: {', '.join(MONITORS)}."
    ),
    patience: int = typer.Option(None, "--patience", help="Stop after this many epochs without improvement."),
    workers: int = options.Workers,
    cache: bool = options.Cache,
    feature_cache: bool = options.FeatureCache,
    channels_last: bool = options.ChannelsLast,
    track: str = options.Track,
    tracking_uri: str = options.TrackingUri,
    distributed: bool = typer.Option(
        False,
        "--distributed",
        help="One training over several processes: reruns this command under `accelerate launch` "
        "(DistributedDataParallel, --bs per process; CPU processes over gloo when there is no GPU).",
    ),
    processes: int = typer.Option(
        None, "--processes", help="Processes for --distributed (default: one per GPU, or 2 without GPUs)."
    ),
    out: Path = options.out_option("run", "the run (model, metrics, plots)"),
) -> None:
    """Train one architecture in freeze or whole mode and write its report and model."""
    config = TrainConfig(
        arch=arch,
        mode=mode,
        epochs=epochs,
        lr=lr,
        bs=bs,
        size=size,
        weights=weights,
        seed=seed,
        train_bn=train_bn,
        augment=augment,
        balanced=balanced,
        monitor=monitor,
        patience=patience,
        num_workers=workers,
        extra_train_dirs=[str(p) for p in augment_dir or []],
        cache=cache,
        feature_cache=feature_cache,
        channels_last=channels_last,
        track=track,
        tracking_uri=tracking_uri,
    )
    count = processes_to_launch(distributed, processes)
    if count:
        config.check()
        argv = without_options(sys.argv[1:], flags=("--distributed",), valued=("--processes",))
        raise typer.Exit(relaunch(argv, count))
    train(data_dir, config, out)


def register(app: typer.Typer) -> None:
    app.command("train")(command)
