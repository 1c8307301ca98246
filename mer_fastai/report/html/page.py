"""`report`: one self-contained, offline HTML page for a run, a cross-validation or a grid folder.

Every figure and spectrogram thumbnail is inlined as a `data:` URI, so the page is one file that opens
offline and can be sent on; audio files are linked relative to the page (they stay where they are).
The page is rendered by the Jinja2 templates in `mer_fastai/report/html/templates/`; sorting the results table is
a small inline script, and everything reads the same with JavaScript off.

What each folder kind holds is `runs.layout`'s schema. A run's section (`run`) shows its settings, scores per
class, target or mood, its task's plots and its errors: the worst window and track mistakes of a
classification, the worst tracks of a regression or multilabel run (`predictions`). A grid (`grid`) adds the
results table and heatmap; a cross-validation (`cv`) the folds' summary and the pooled out-of-fold errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..._plumbing.files import atomic_write, check_output_file, check_replaceable, is_mer_page
from ..._plumbing.progress import console
from ..._version import __version__
from ...errors import MerError
from ...runs.layout import REPORT_HTML, folder_kind, is_finished, model_header, read_metrics
from .cv import cv_page
from .dataset import Datasets
from .grid import grid_page
from .run import run_section
from .templating import render

if TYPE_CHECKING:
    from ...tasks.opened import Dataset

__all__ = ["write_report"]

VERSIONED = ("mer-fastai", "torch", "fastai")  # the packages whose versions the page shows


def write_report(path_in: str | Path, out: str | Path | None = None, opened: Iterable[Dataset] = ()) -> Path:
    """Write the HTML report of a run, cross-validation or grid folder; returns its path.

    `out` defaults to `<folder>/report.html`. Refuses a folder that is none of the three kinds, and an `out` that
    is neither new, empty nor a page mer-fastai wrote (a user's file is never replaced). `opened`: data sets the
    caller has read already (the run's own), described without reading them again.
    """
    folder = Path(path_in)
    out = Path(out) if out is not None else folder / REPORT_HTML
    out = check_output_file(check_replaceable(out, is_mer_page, "report"), "--out")
    builders = {"run": run_page, "grid": grid_page, "cv": cv_page}
    page = assemble(folder, builders[folder_kind(folder)](folder, out.parent.resolve(), Datasets(opened)))
    return atomic_write(out, render("report.html.j2", page["title"], str(folder), page=page))


def write_report_or_warn(folder: Path, show: bool = True, opened: Iterable[Dataset] = ()) -> Path | None:
    """`report.html` at the end of `train`, `cv` or `run`: a failure is a warning line, never a lost result."""
    try:
        report = write_report(folder, opened=opened)
    except (MerError, OSError) as exc:
        console.print(f"[yellow]warning:[/] the HTML report could not be written: {exc}", soft_wrap=True)
        return None
    if show:
        console.print(f"report: [bold]{report}")
    return report


def run_page(folder: Path, here: Path, datasets: Datasets) -> dict:
    """The page of one run folder."""
    run = run_section(folder, here, "run", datasets)
    return {"title": f"Run {run['title']}", "runs": [run], "datasets": datasets}


def assemble(folder: Path, built: dict) -> dict:
    """What the template reads: a page builder's title, run sections, data sets (and grid or cv part), plus
    the versions of the first run."""
    runs = built["runs"]
    return {
        "title": built["title"],
        "runs": runs,
        "datasets": list(built["datasets"].values()),
        "grid": built.get("grid"),
        "cv": built.get("cv"),
        "versions": versions(runs[0]["folder_path"] if runs else folder),
    }


def versions(run_dir: Path) -> list[dict]:
    """mer-fastai, torch and fastai versions: as the run recorded them where it did, else the installed ones."""
    from importlib.metadata import PackageNotFoundError, version

    recorded = {}
    if is_finished(run_dir):
        recorded = dict(read_metrics(run_dir).get("versions", {}))
    if "mer-fastai" not in recorded:
        model_version = (model_header(run_dir) or {}).get("package_version")
        if model_version:
            recorded["mer-fastai"] = model_version
    rows = []
    for name in VERSIONED:
        if name in recorded:
            rows.append({"name": name, "value": recorded[name], "origin": "recorded by the run"})
            continue
        try:
            installed = __version__ if name == "mer-fastai" else version(name)
        except PackageNotFoundError:
            installed = "not installed"
        rows.append({"name": name, "value": installed, "origin": "installed now (the run did not record it)"})
    return rows
