"""`find_lr`, `train` and `run_cv` as the Python API and the commands call them: the loop (`training.fit`,
`evaluation.cv`) returns its results, and this caller draws the pages from them (`report/`).

A run's pages (`lr_find.png`, `curves.png`, the task's plots and reports of its scored splits, the terminal table,
`report.html`) are drawn by `run_pages` once the run folder is published, while the run is still tracked, so every
fold of a cross-validation has its pages as soon as it finishes; a cross-validation's pooled plots, summary table
and `report.html` follow its last fold. A page that cannot be written (a full disk) is a warning line: the run's
results are published already (metrics.json last) and stay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .._plumbing.progress import console
from ..errors import MerError
from ..evaluation import cv as loop
from ..evaluation.oof import CVResult
from ..report.figures import plot_curves, plot_lr_find
from ..report.html.page import write_report_or_warn
from ..report.results import row_task
from ..report.tables import cv_table
from ..report.views.registry import views_of
from ..runs.layout import CURVES_FILE, REFIT_KEY
from ..training import fit
from ..training.config import TrainConfig
from ..training.fit import LRFindResult, Pages, TrainResult

__all__ = ["find_lr", "train", "run_cv", "run_pages"]


def find_lr(data_dir: str | Path, config: TrainConfig, out: str | Path) -> LRFindResult:
    """Run the LR range test for `config` and save `lr_find.png` and `lr_find.json` in `out`."""
    return fit.find_lr(data_dir, config, out, _plot_lr_find)


def train(data_dir: str | Path, config: TrainConfig, out: str | Path, show: bool = True) -> TrainResult:
    """Train one architecture on one data set into the run folder `out` (`training.fit.train`: its layout), then
    draw its pages: the task's plots and reports, `curves.png`, `lr_find.png` (with `lr: auto`), the terminal table
    (`show`) and `report.html`."""
    return fit.train(data_dir, config, out, run_pages(show))


def run_cv(
    data_dir: str | Path,
    config: TrainConfig,
    out: str | Path,
    folds: int = 5,
    repeats: int = 1,
    *,
    seed: int | None = None,
    ensemble: bool = True,
    refit: bool = False,
    report: bool = True,
    show: bool = True,
) -> CVResult:
    """Cross-validate `config` on the data set `data_dir` into `out` (`evaluation.cv.run_cv`: the folds, the
    ensemble and `refit`), each run's pages drawn as it finishes; then (`show`) the summary table and the model
    files, and with `report` the HTML report `out/report.html`. The task's pooled plots are drawn first."""
    result = loop.run_cv(data_dir, config, out, folds, repeats, seed=seed, ensemble=ensemble, refit=refit, show=show,
                         pages=run_pages(show))  # fmt: skip
    if result.plots is not None:
        plots = result.plots
        drawn(lambda: views_of(result.task).plot_pooled(result.out, plots.window, plots.track, plots.values,
                                                         result.classes, plots.scale, plots.title))  # fmt: skip
    if show:
        title = f"cross-validation ({result.task}): {len(result.fold_dirs)} folds — {result.out}"
        console.print(cv_table(result.summary, result.pooled, result.task.facts.scores, title))
        for line in loop.model_lines(result):
            console.print(line, soft_wrap=True, highlight=False)
    if report:
        write_report_or_warn(Path(out), show, result.opened)
    return result


def run_pages(show: bool) -> Pages:
    """The pages of a finished run: its plots and reports, terminal table (`show`) and `report.html`."""

    def draw(result: TrainResult) -> None:
        run_dir, metrics = result.run_dir, result.metrics
        drawn(lambda: _task_pages(result))
        if result.lr_find is not None:
            _plot_lr_find(result.lr_find)
        plot_curves(run_dir / CURVES_FILE, result.history, result.title)
        if show and metrics.get(REFIT_KEY):
            console.print(f"refit ({metrics['epochs']} epochs, lr {result.lr:.2e}): {metrics[REFIT_KEY]}",
                          soft_wrap=True)  # fmt: skip
        elif show:
            kept = f"{metrics['keep']} epoch {metrics['kept_epoch'] + 1}"
            title = f"{result.title} — {kept}, lr {result.lr:.2e}"
            console.print(views_of(row_task(metrics)).terminal_table(metrics, title))
            console.print(f"run folder: [bold]{run_dir}")
        write_report_or_warn(run_dir, show, [result.dataset] if result.dataset else ())

    return draw


def _task_pages(result: TrainResult) -> None:
    """The task's plots of each scored split and its files about the validation windows (a classifier's
    classification_report.txt and confusion matrix), as the task's views draw them."""
    if result.dataset is None:
        return
    views, windows = views_of(result.dataset.task), result.windows
    for split in result.splits:
        views.plot_split(result.run_dir, split.prefix, split.scores, split.tracks, result.dataset.info, split.title)
    if windows is not None and windows.outputs is not None:
        scores = result.metrics["valid"]
        views.write_windows(result.run_dir, windows.truth, windows.outputs, windows.tracks, scores, result.title)


def drawn(draw: Callable[[], None]) -> None:
    """Draw pages of published results: a page that cannot be written is a warning line, never a lost result."""
    try:
        draw()
    except (MerError, OSError) as exc:
        console.print(f"[yellow]warning:[/] a plot could not be written: {exc}", soft_wrap=True)


def _plot_lr_find(found: LRFindResult) -> None:
    plot_lr_find(found.plot, found.lrs, found.losses, found.suggestions)
