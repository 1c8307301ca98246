"""fastai callbacks: rich progress bars and one log line per epoch instead of fastprogress."""

from __future__ import annotations

import time

from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.imports import noop
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._plumbing.progress import console


class RichProgress(Callback):
    """Batch progress bars for training and validation, and a line of losses and scores per epoch."""

    order = 60
    active = False

    def before_fit(self) -> None:
        self.quiet = self.learn.logger is noop  # inside `learn.no_logging()`, e.g. lr_find
        self.active = True
        if not self.quiet:
            self.learn.logger = self._log_epoch
        self.names = [n for n in self.recorder.metric_names if n != "epoch"]
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[loss]}"),
            console=console,
            transient=True,
        )
        self.bar.start()

    def _start(self, phase: str, total: int) -> None:
        if not self.active:
            self.task = None
            return
        description = f"epoch {self.epoch + 1}/{self.n_epoch} {phase}"
        self.task = self.bar.add_task(description, total=total, loss="")

    def before_train(self) -> None:
        self._start("train", len(self.dl))

    def before_validate(self) -> None:
        self._start("valid", len(self.dl))

    def after_batch(self) -> None:
        if self.task is None:
            return
        loss = f"loss {float(self.smooth_loss):.4f}" if self.training else ""
        self.bar.update(self.task, advance=1, loss=loss)

    def after_train(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)

    after_validate = after_train

    def after_fit(self) -> None:
        self.bar.stop()
        self.active = False
        if not self.quiet:
            self.learn.logger = noop

    def _log_epoch(self, values) -> None:
        if self.active:
            epoch, *rest = values
            cells = [f"{name} {v}" if isinstance(v, str) else f"{name} {v:.4f}" for name, v in zip(self.names, rest)]
            console.print(f"epoch {int(epoch) + 1:>3}  " + "  ".join(cells), soft_wrap=True)


class EpochTimer(Callback):
    """Wall seconds of every epoch (training and validation), in `seconds`."""

    def before_fit(self) -> None:
        self.seconds: list[float] = []

    def before_epoch(self) -> None:
        self.started = time.perf_counter()

    def after_epoch(self) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def use_rich_progress(learn) -> None:
    """Swap fastai's fastprogress bars for `RichProgress`."""
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    if not any(isinstance(cb, RichProgress) for cb in learn.cbs):
        learn.add_cb(RichProgress())
