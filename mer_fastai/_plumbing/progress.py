"""The commands' messages (`console`, on stderr) and the rich progress bars of the long-running ones."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class MessageConsole(Console):
    """A console whose reader may be gone (a closed terminal or tool session, a pipe whose reader exited): its
    output is then dropped and the command goes on to finish and write its files. (rich's default ends the
    program there, silently, with status 1: a background `predict` with a dead stderr wrote nothing at all.)"""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        try:  # what the stream still buffers would fail again at exit (status 120): send it to the null device
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):  # no file descriptor (a test's captured stream)
            pass


console = MessageConsole(stderr=True)


class _Notes(io.TextIOBase):
    """Standard output as a `MessageConsole` writes it, for a library's `print`s (fastai's "Better model found")."""

    def __init__(self) -> None:
        self.console = MessageConsole(file=sys.stdout, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.console.print(text, end="")
        return len(text)


@contextmanager
def library_notes() -> Iterator[None]:
    """What a library `print`s meanwhile goes to standard output as before; a reader gone silences it rather than
    ending the command (a `train` whose stdout closed ended at its first "Better model found", losing the run)."""
    with redirect_stdout(_Notes()):
        yield


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """A progress bar over `total` steps; yields the function that advances it by one."""
    if not enabled or total == 0:
        yield lambda: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
