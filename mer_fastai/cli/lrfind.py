"""`mer-fastai lrfind`: the learning-rate range test."""

from __future__ import annotations

from pathlib import Path

import typer

from ..progress import console
from ..train import TrainConfig, find_lr
from . import options


def command(
    data_dir: Path = options.DataDir,
    arch: str = options.Arch,
    mode: str = options.Mode,
    weights: str = options.Weights,
    bs: int = options.Bs,
    size: int = options.Size,
    seed: int = options.Seed,
    train_bn: bool = options.TrainBn,
    workers: int = options.Workers,
    cache: bool = options.Cache,
    feature_cache: bool = options.FeatureCache,
    channels_last: bool = options.ChannelsLast,
    track: str = options.Track,
    tracking_uri: str = options.TrackingUri,
    out: Path = options.out_option("lrfind", "lr_find.png and lr_find.json"),
) -> None:
    """Find a learning rate: save the loss-vs-LR plot and print the suggestions."""
    config = TrainConfig(
        arch=arch,
        mode=mode,
        weights=weights,
        bs=bs,
        size=size,
        seed=seed,
        train_bn=train_bn,
        num_workers=workers,
        cache=cache,
        feature_cache=feature_cache,
        channels_last=channels_last,
        track=track,
        tracking_uri=tracking_uri,
    )
    result = find_lr(data_dir, config, out)
    for name, value in result.suggestions.items():
        console.print(f"{name:>8}: {value:.2e}")
    console.print(f"suggested learning rate: [bold]{result.suggestion:.2e}[/] (valley); plot: {result.plot}")


def register(app: typer.Typer) -> None:
    app.command("lrfind")(command)
