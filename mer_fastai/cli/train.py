"""`mer-fastai train`: fit one architecture on one data set."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..training.config import TRAIN, TrainConfig
from ..training.options import with_train_options
from . import options


@with_train_options(TRAIN)
def command(
    data_dir: Path = options.DataDir,
    config: TrainConfig = None,  # one option per training setting (see mer_fastai/training/config.py)
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
    """Train one architecture in freeze, whole or partial mode and write its report and model."""
    from ..api.training import train
    from ..runs.inputs import refuse_training_out
    from ..training.distributed import processes_to_launch, relaunch, without_options

    refuse_training_out(out, data_dir, config)
    count = processes_to_launch(distributed, processes)
    if count:
        config.check()
        argv = without_options(sys.argv[1:], flags=("--distributed",), valued=("--processes",))
        raise typer.Exit(relaunch(argv, count))
    train(data_dir, config, out)


def register(app: typer.Typer) -> None:
    app.command("train")(command)
