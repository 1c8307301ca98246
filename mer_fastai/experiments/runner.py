"""Run a recipe: expand its grid into cells, prepare data once, train each cell, keep results safe.

A cell trains once on the data set's split, or, when the recipe sets `folds`, cross-validates
(`evaluation.cv.run_cv`: its row holds each score's mean over the folds and the spread in `<score>_sd`; its folder, as
`mer-fastai cv` writes it, the fold models as one ensemble, `ensemble.safetensors`). The data sets
are prepared for the recipe's `task` (classification of each stage's features, or regression / multilabel
of its `targets`), and each row holds that task's scores.

Every finished cell is written to `state.json` and `results.csv` at once (atomically), so a failure
or Ctrl-C never loses finished cells; rerunning skips cells already done with the same settings and
retries failed ones. The data the cells read is made once by `datasets.RecipeData`; `state.json` is
`state.State`; the grid's `report.html` is written by the report page itself, as `mer-fastai report` does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import choices
from .._plumbing.files import check_inside, is_within, output_folder, write_json
from .._plumbing.progress import console
from ..bounds import quote
from ..errors import Interrupted, MerError
from ..report.html.page import write_report_or_warn
from ..report.results import load_results, results_tables, write_results
from ..runs.inputs import refuse_within
from ..runs.layout import CELLS_DIR, HEATMAP, REPORT_HTML, RESULTS_CSV, RESULTS_MD, STATE_FILE, recipe_file
from ..training.config import TrainConfig
from ..training.tracking import tracking_settings
from .datasets import RecipeData
from .executors import Cell, execute_local
from .ray_executor import execute_ray
from .recipe import load_recipe
from .recipe_schema import Recipe, Stage, arch_settings, demo_notes, recipe_settings, stage_archs
from .state import State

__all__ = ["run_recipe", "RunSummary"]


@dataclass
class RunSummary:
    """What a recipe run did."""

    out: Path
    rows: list[dict]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


EXECUTORS: dict[str, Callable[..., None]] = dict(zip(choices.EXECUTORS, (execute_local, execute_ray), strict=True))


class RecipeRun:
    """Expands and runs one recipe into one output folder."""

    def __init__(
        self,
        recipe: Recipe,
        out: Path,
        executor: str = "local",
        executor_options: dict | None = None,
        tracking: dict | None = None,
    ):
        if executor not in EXECUTORS:
            raise MerError(f"unknown executor {quote(executor)}; choose one of {', '.join(EXECUTORS)}")
        self.recipe, self.out, self.executor = recipe, out, executor
        self.executor_options = executor_options or {}
        self.settings = {**recipe_settings(recipe), **(tracking or {})}
        self.data = RecipeData(recipe, out, recipe.spec, self.settings["aggregate"])
        self.state = State(out)  # reread by `run` once the folder is locked
        self.summary = RunSummary(out, [])

    def run(self) -> RunSummary:
        """Run every stage in the locked output folder; on Ctrl-C or an error results.csv matches state.json,
        and folders left empty are removed (the output folder too, when this run created it).

        Before anything is written: every path the grid writes must resolve inside --out, --out must not be (or
        lie inside) an input folder, and no input may lie where the grid writes."""
        self._check_paths()
        with output_folder(self.out, "--out"):
            self.state = State(self.out)  # read under the lock
            try:
                self._run_stages()
            except BaseException as exc:
                if self.state.cells:
                    with contextlib.suppress(Exception):  # the error that stopped the run is the one to show
                        write_results(self.out, self.state.rows())  # redone, in case it was interrupted
                prune_empty_folders(self.out)
                finished = len(self.state.rows())
                if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted) and finished:
                    raise Interrupted(f"{finished} finished cell(s) kept in {self.out / RESULTS_CSV}") from exc
                raise
        return self.summary

    def _run_stages(self) -> None:
        stage_runs: dict[str, dict[tuple[str, str], str]] = {}
        for stage in self.recipe.stages:
            cells = self._stage_cells(stage, stage_runs)
            todo = []
            for cell in cells:
                if self.state.is_done(cell, cell.fingerprint()):
                    self.summary.skipped.append(cell.id)
                else:
                    todo.append(cell)
            if todo:
                self._write_recipe()
                EXECUTORS[self.executor](todo, self._record, **self.executor_options)
            stage_runs[stage.name] = self._finished_runs(cells)
        self._write_recipe()
        self.summary.rows = self.state.rows()
        write_results(self.out, self.summary.rows)

    def _write_recipe(self) -> None:
        """The recipe as run, beside its results (written once there is something to run)."""
        write_json(self._recipe_file(), self.recipe.to_dict())

    def _recipe_file(self) -> Path:
        return self.out / recipe_file(self.recipe.experiment)

    def _planned(self) -> list[Path]:
        """Every file and folder the grid writes directly under --out or under its data, baseline and GAN folders."""
        names = (STATE_FILE, RESULTS_CSV, RESULTS_MD, HEATMAP, REPORT_HTML, CELLS_DIR)
        return [self._recipe_file(), *(self.out / name for name in names), *self.data.folders()]

    def _inputs(self) -> dict[Path, str]:
        """What the grid reads from the user: the recipe file, each data set's audio and labels, the --augment-dir
        folders."""
        source = Path(self.recipe.source)
        inputs = {source: "the recipe"} if source.is_file() else {}
        for name, spec in self.recipe.datasets.items():
            if not spec.is_demo:
                inputs[Path(spec.audio)] = f"the audio folder of data set {quote(name)}"
            if spec.labels:
                inputs[Path(spec.labels)] = f"the labels file of data set {quote(name)}"
        inputs.update({Path(folder): "an --augment-dir folder" for folder in self.recipe.augment_dirs})
        return inputs

    def _check_paths(self) -> None:
        """Refuse, in one line and before anything is written, a write that would leave --out (a link, or a name
        that slipped past the recipe's checks), an --out inside an input folder, or an input where the grid writes."""
        planned = self._planned()
        for path in planned:
            check_inside(self.out, path)
        inputs = self._inputs()
        refuse_within(self.out, {path: what for path, what in inputs.items() if path.is_dir()})
        for path, what in inputs.items():
            for target in planned:
                if is_within(path, target):
                    raise MerError(
                        f"{target}: the grid writes here, but it holds {what} ({path}); choose another --out "
                        "or move the input"
                    )

    def _finished_runs(self, cells: list[Cell]) -> dict[tuple[str, str], str]:
        """Run folder per (feature, arch) of a stage's finished cells, whole mode preferred."""
        runs: dict[tuple[str, str], str] = {}
        for cell in sorted(cells, key=lambda c: (c.mode != "whole", c.augmentation != "none")):
            if self.state.cells.get(cell.id, {}).get("status") == "done":
                runs.setdefault((cell.feature, cell.arch), cell.run_dir)
        return runs

    def _record(self, cell: Cell, row: dict | None, error: str | None) -> None:
        fingerprint = cell.fingerprint()
        if error is None:
            self.state.record(cell.id, {"status": "done", "fingerprint": fingerprint, "row": row})
            self.summary.ran.append(cell.id)
        else:
            self.state.record(cell.id, {"status": "failed", "fingerprint": fingerprint, "error": error})
            self.summary.failed[cell.id] = error
            console.print(f"[red]cell {cell.id} failed:[/] {error}", soft_wrap=True)
        write_results(self.out, self.state.rows())

    def _stage_cells(self, stage: Stage, stage_runs: dict[str, dict[tuple[str, str], str]]) -> list[Cell]:
        cells = []
        for feature in stage.features:
            data_dir = self.data.prepare(self.state, stage.dataset, feature)
            gan_dir = self.data.gan_images(stage.dataset, feature, data_dir) if "gan" in stage.augmentations else None
            for arch in stage_archs(self.recipe, stage):
                own = self.data.arch_input(arch)
                arch_data = self.data.prepare(self.state, stage.dataset, feature, own) if own else data_dir
                weights, label = self.settings["weights"], self.settings["weights"]
                if stage.weights_from:
                    weights = stage_runs[stage.weights_from].get((feature, arch))
                    if weights is None:
                        continue  # the source cell is missing (filtered out or failed)
                    label = f"{stage.weights_from}"
                for mode in stage.modes:
                    for augmentation in stage.augmentations:
                        extra = {"none": [], "gan": [gan_dir], "dirs": list(self.recipe.augment_dirs)}[augmentation]
                        config = TrainConfig(
                            arch=arch,
                            mode=mode,
                            **{**arch_settings(self.settings, arch), "weights": weights},
                            extra_train_dirs=extra,
                        )
                        cell = Cell(
                            self.recipe.experiment,
                            stage.name,
                            stage.dataset,
                            feature,
                            arch,
                            mode,
                            augmentation,
                            str(arch_data),
                            "",
                            config,
                            label,
                            self.recipe.folds,
                            self.recipe.repeats,
                        )
                        cell.run_dir = str(self.out / CELLS_DIR / cell.folder_name)
                        check_inside(self.out, cell.run_dir)  # a name is made safe by Cell.id; a link is not
                        cells.append(cell)
        return cells


def prune_empty_folders(root: Path) -> None:
    """Remove the folders below `root` that hold nothing (left by steps that failed before writing)."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (any more): kept
            folder.rmdir()


def run_recipe(
    recipe: str | Path | Recipe,
    out: str | Path,
    *,
    features: list[str] | None = None,
    archs: list[str] | None = None,
    modes: list[str] | None = None,
    overrides: list[str] | None = None,
    augment_dirs: list[str] | None = None,
    executor: str = "local",
    executor_options: dict | None = None,
    track: str | None = None,
    tracking_uri: str | None = None,
    show: bool = True,
) -> RunSummary:
    """Run (or resume) an experiment recipe into `out`; returns what ran, what was skipped, what failed.

    `track="mlflow"` logs every cell trained to MLflow (experiment: the recipe's), see `training.tracking`.
    `overrides` (as `--set`) always win over the recipe's `demo_settings`; the run prints a note where they do.
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides, features, archs, modes)
    elif overrides or features or archs or modes:
        raise MerError(
            "run_recipe: overrides, features, archs and modes apply while a recipe is loaded; pass its name or path, "
            "or load_recipe(name, overrides, features, archs, modes)"
        )
    for note in demo_notes(recipe):
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True, highlight=False)
    if augment_dirs:
        recipe.augment_dirs = [*recipe.augment_dirs, *map(str, augment_dirs)]
        for stage in recipe.stages:
            if "dirs" not in stage.augmentations:
                stage.augmentations.append("dirs")
    started = time.time()
    tracking = tracking_settings(track, tracking_uri, recipe.experiment)
    summary = RecipeRun(recipe, Path(out), executor, executor_options, tracking).run()
    if summary.rows:
        write_report_or_warn(Path(out), show)
    if show:
        for table in results_tables(summary.rows):
            console.print(table)
        console.print(
            f"{len(summary.ran)} cell(s) trained, {len(summary.skipped)} already done, {len(summary.failed)} failed "
            f"in {time.time() - started:.0f} s; results in {Path(out) / RESULTS_MD}"
        )
    return summary


def show_results(out: str | Path) -> list[dict]:
    """Reprint the tables of a finished (or partial) run folder."""
    rows = load_results(out)
    for table in results_tables(rows):
        console.print(table)
    return rows
