"""The `mer-fastai` entry point: registers the subcommands and turns errors into one line.

Every subcommand module imports its heavy libraries (torch, fastai, ...) inside its command function, so
`--help`, usage errors and light commands start at once; `tests/test_startup.py` keeps it so.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from typing import NoReturn

if "--debug" not in sys.argv and os.environ.get("MER_FASTAI_DEBUG") != "1":
    # library deprecation chatter (torch.jit, timm) is noise for CLI users; --debug shows it
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

import typer  # noqa: E402  (after the warning filters, which must precede the libraries' imports)
from rich.markup import escape

from .._plumbing.progress import console
from .._version import __version__
from ..errors import Interrupted, MerError
from . import (
    baseline,
    cv,
    demo,
    embed,
    ensemble,
    evaluate,
    export,
    gan,
    lrfind,
    predict,
    prepare,
    recipes,
    report,
    results,
    run,
    train,
    weights,
)

KEPT = "finished results are kept"
OS_ERROR_FIXES = {
    errno.ENOSPC: "free disk space, then rerun the same command",
    errno.EDQUOT: "free disk space (quota exceeded), then rerun the same command",
    errno.EFBIG: "the file is larger than this file system or its limit allows; choose another path",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.EISDIR: "it is a folder; name a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "it already exists; remove it or choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTEMPTY: "the folder is not empty; empty it or choose another path",
}

app = typer.Typer(
    name="mer-fastai",
    help="Music emotion recognition with fastai: spectrogram data sets, transfer learning, experiment recipes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
state = {"debug": False}


def show_version(value: bool) -> None:
    """`--version`: print `mer-fastai <version>` and exit (before any subcommand is looked for)."""
    if value:
        typer.echo(f"mer-fastai {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", help="Show the version and exit.", callback=show_version, is_eager=True
    ),
) -> None:
    """Global options."""
    state["debug"] = debug
    if not debug:
        warnings.filterwarnings("ignore")


for module in (
    prepare,
    lrfind,
    train,
    cv,
    run,
    recipes,
    results,
    report,
    demo,
    predict,
    embed,
    evaluate,
    export,
    ensemble,
    baseline,
    gan,
    weights,
):
    module.register(app)


def main() -> NoReturn:
    """Run the CLI: a user error is one red line on stderr and exit status 2; Ctrl-C one line and 130."""
    debug = "--debug" in sys.argv or os.environ.get("MER_FASTAI_DEBUG") == "1"
    try:
        app()  # standalone: always ends in SystemExit (usage errors: click's message and exit 2)
    except SystemExit as exc:
        interrupt = _interrupt_in_chain(exc)  # typer turns Ctrl-C into a silent exit 130
        if interrupt is None:
            raise
        fail(interrupted_line(interrupt), 130)
    except KeyboardInterrupt as exc:
        fail(interrupted_line(exc), 130)
    except MerError as exc:
        if debug:
            raise
        fail(f"[bold red]error:[/] {escape(str(exc))}", 2)
    except OSError as exc:
        if debug:
            raise
        fail(f"[bold red]error:[/] {escape(describe_os_error(exc))}", 2)
    sys.exit(0)


def fail(message: str, code: int) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    console.print(message, soft_wrap=True, highlight=False)
    sys.exit(code)


def describe_os_error(exc: OSError) -> str:
    """`<file>: <what the system said>; <the fix>` for an operating-system error (disk full, permissions, ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = OS_ERROR_FIXES.get(exc.errno, "check the path, then rerun the same command")
    files = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    return f"{' -> '.join(files)}: {reason}; {fix}" if files else f"{reason}; {fix}"


def interrupted_line(interrupt: KeyboardInterrupt) -> str:
    """The one line printed after Ctrl-C: what was kept (`Interrupted` says it) and how to resume."""
    kept = str(interrupt) if isinstance(interrupt, Interrupted) and str(interrupt) else KEPT
    return escape(f"interrupted: {kept}; rerun the same command to resume")


def _interrupt_in_chain(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt among the causes of `exc`, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
