"""Run a recipe: expand its grid into cells, prepare data once, train each cell, keep results safe.

A cell trains once on the data set's split, or, when the recipe sets `folds`, cross-validates
(`cv.run_cv`: its row holds each score's mean over the folds and the spread in `<score>_sd`; its folder, as
`mer-fastai cv` writes it, the fold models as one ensemble, `ensemble.safetensors`). The data sets
are prepared for the recipe's `task` (classification of each stage's features, or regression / multilabel
of its `targets`), and each row holds that task's scores.

Every finished cell is written to `state.json` and `results.csv` at once (atomically), so a failure
or Ctrl-C never loses finished cells; rerunning skips cells already done with the same settings and
retries failed ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import choices
from .._plumbing.files import check_inside, is_within, output_folder, write_json
from .._plumbing.progress import console
from ..data.dataset import DATASET_FILE
from ..data.spectrogram import SpecConfig, preset
from ..data.synth import make_study_style_set
from ..errors import Interrupted, MerError
from ..models.archs import contract_differences, get_arch
from ..preparation.prepare import prepare_dataset
from ..report.html.page import REPORT_HTML
from ..report.results import HEATMAP, RESULTS_CSV, RESULTS_MD, load_results, results_tables, write_results
from ..runs.inputs import refuse_within
from ..training.config import TrainConfig
from ..training.fit import write_html_report
from ..training.tracking import tracking_settings
from .executors import Cell, execute_local
from .ray_executor import execute_ray
from .recipe import (
    TASK_KEYS,
    DatasetSpec,
    Recipe,
    Stage,
    arch_settings,
    demo_notes,
    load_recipe,
    recipe_settings,
    stage_archs,
)

STATE_FILE = "state.json"
BASELINE_SCORING = "tracks/1"  # change when the baseline's rows change, so that grids redo them once


@dataclass
class RunSummary:
    """What a recipe run did."""

    out: Path
    rows: list[dict]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class State:
    """`state.json`: status, fingerprint and result row of every cell ever run in this folder."""

    def __init__(self, out: Path):
        self.path = out / STATE_FILE
        self.cells: dict[str, dict] = json.loads(self.path.read_text())["cells"] if self.path.exists() else {}

    def is_done(self, cell: Cell, fingerprint: str) -> bool:
        saved = self.cells.get(cell.id, {})
        return (
            saved.get("status") == "done"
            and saved.get("fingerprint") == fingerprint
            and all((Path(cell.run_dir) / name).exists() for name in cell.result_files)
        )

    def record(self, key: str, entry: dict) -> None:
        self.cells[key] = entry
        write_json(self.path, {"cells": self.cells})

    def rows(self) -> list[dict]:
        return [entry["row"] for entry in self.cells.values() if entry.get("status") == "done"]


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
            raise MerError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
        self.recipe, self.out, self.executor = recipe, out, executor
        self.executor_options = executor_options or {}
        self.settings = {**recipe_settings(recipe), **(tracking or {})}
        self.spec = SpecConfig.from_dict(recipe.spectrogram, source=f"{recipe.source}: spectrogram")
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
        write_json(self._recipe_file(), asdict(self.recipe))

    def _recipe_file(self) -> Path:
        return self.out / f"recipe-{self.recipe.experiment}.json"

    def _planned(self) -> list[Path]:
        """Every file and folder the grid writes directly under --out or under its data, baseline and GAN folders."""
        names = (STATE_FILE, RESULTS_CSV, RESULTS_MD, HEATMAP, REPORT_HTML, "runs")
        paths = [self._recipe_file(), *(self.out / name for name in names)]
        for stage in self.recipe.stages:
            spec = self.recipe.datasets[stage.dataset]
            if spec.is_demo:
                paths.append(self._demo_folder(stage.dataset, spec))
            for feature in stage.features:
                paths.extend(self._data_dir(stage.dataset, feature, own) for own in self._own_inputs())
                if self.recipe.baseline:
                    paths.append(self._baseline_dir(stage.dataset, feature))
                if "gan" in stage.augmentations:
                    paths.append(self._gan_folder(stage.dataset, feature))
        return paths

    def _inputs(self) -> dict[Path, str]:
        """What the grid reads from the user: the recipe file, each data set's audio and labels, the --augment-dir
        folders."""
        source = Path(self.recipe.source)
        inputs = {source: "the recipe"} if source.is_file() else {}
        for name, spec in self.recipe.datasets.items():
            if not spec.is_demo:
                inputs[Path(spec.audio)] = f"the audio folder of data set {name!r}"
            if spec.labels:
                inputs[Path(spec.labels)] = f"the labels file of data set {name!r}"
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

    def _audio(self, name: str, spec: DatasetSpec) -> tuple[Path, Path | None]:
        """A data set's audio folder and labels file; the built-in demo set is synthesised once."""
        if not spec.is_demo:
            return Path(spec.audio), Path(spec.labels) if spec.labels else None
        folder = self._demo_folder(name, spec)
        ratings = folder / "mean_ratings.csv"
        if not ratings.exists():
            console.print(f"synthesising the built-in demo set {name!r} into {folder}")
            make_study_style_set(folder, spec.demo.clips_per_class, spec.demo.seconds, seed=spec.demo.seed)
        return folder / "audio", ratings

    def _demo_folder(self, name: str, spec: DatasetSpec) -> Path:
        demo = spec.demo
        return self.out / "demo-audio" / f"{name}-{demo.clips_per_class}x{demo.seconds:g}s-seed{demo.seed}"

    def _data_dir(self, name: str, feature: str, preset: str | None = None) -> Path:
        """The data set of `name` and `feature`; `preset`: the one prepared with an architecture's own input."""
        return self.out / "data" / (f"{name}-{feature}" + (f"-{preset}" if preset else ""))

    def _arch_input(self, arch: str) -> str | None:
        """The spectrogram preset `arch` reads when the recipe's spectrogram does not fit it (e.g. musicnn in
        expB, whose data sets are 10 s dB images): its cells get a data set of their own. None: the recipe's."""
        table = get_arch(arch)
        return table.spectrogram if contract_differences(table, self.spec) else None

    def _own_inputs(self) -> list[str | None]:
        archs = [arch for stage in self.recipe.stages for arch in stage_archs(self.recipe, stage)]
        return list(dict.fromkeys([None, *(self._arch_input(arch) for arch in archs)]))

    def _baseline_dir(self, name: str, feature: str) -> Path:
        return self.out / "baseline" / f"{name}-{feature}"

    def _gan_folder(self, name: str, feature: str) -> Path:
        gan = self.recipe.gan
        return self.out / "gan" / f"{name}-{feature}-{gan.backend}-{gan.steps}steps"

    def _prepare(self, name: str, feature: str, own: str | None = None) -> Path:
        """The data set of `name` and `feature` (prepared or resumed); `own`: an architecture's input preset,
        whose data set is the same clips and split in that input (the baseline reads the recipe's only)."""
        spec = self.recipe.datasets[name]
        audio, labels = self._audio(name, spec)
        data_dir = self._data_dir(name, feature, own)
        prepare_dataset(
            audio,
            data_dir,
            feature,
            labels,
            spec=preset(own) if own else self.spec,
            valid_pct=self.recipe.valid_pct,
            test_pct=self.recipe.test_pct,
            group_by=spec.group_by,
            seed=self.recipe.seed,
            id_column=spec.id_column,
            label_column=spec.label_column,
            cuts=spec.cuts,
            skip_unlabeled=spec.skip_unlabeled,
            allow_outliers=spec.allow_outliers,
            **{key: getattr(self.recipe, key) for key in TASK_KEYS},
        )
        if self.recipe.baseline and own is None:
            self._baseline(name, feature, data_dir)
        return data_dir

    def _baseline(self, name: str, feature: str, data_dir: Path) -> None:
        """The classic-ML reference rows for this data set and feature (once per data version)."""
        from ..evaluation.baseline.classic import run_baseline
        from ..evaluation.baseline.folds import cross_validate_baseline

        marker = f"{self.recipe.experiment}-baseline-{name}-{feature}"
        aggregate = self.settings["aggregate"]  # tracks combined as the cells combine them
        folds = f":cv{self.recipe.folds}x{self.recipe.repeats}" if self.recipe.folds else ""  # none: as before
        scoring = f"{BASELINE_SCORING}:{aggregate}{folds}".encode()
        fingerprint = hashlib.sha1((data_dir / DATASET_FILE).read_bytes() + scoring).hexdigest()[:16]
        if self.state.cells.get(marker, {}).get("fingerprint") == fingerprint:
            return
        console.rule(f"[bold]classic-ML reference for {name} · {feature}")
        out = self._baseline_dir(name, feature)
        if self.recipe.folds:  # scored on the folds the cells cross-validate (same clips, same seed)
            rows = cross_validate_baseline(
                data_dir, out, self.recipe.folds, self.recipe.repeats, seed=self.recipe.seed, aggregate=aggregate
            ).rows
        else:
            rows = run_baseline(data_dir, out, seed=self.recipe.seed, aggregate=aggregate)
        for row in rows:
            row.update(experiment=self.recipe.experiment, dataset=name, stage="baseline", task=self.recipe.task)
            self.state.record(f"{marker}-{row['arch']}", {"status": "done", "fingerprint": fingerprint, "row": row})
        self.state.record(marker, {"status": "marker", "fingerprint": fingerprint})

    def _gan_images(self, name: str, feature: str, data_dir: Path) -> str:
        """Train the GAN on the training split once and generate images per class (Experiment C)."""
        from ..gan.generate import generate_images
        from ..gan.train import train_gan

        gan = self.recipe.gan
        folder = self._gan_folder(name, feature)
        generated = folder / "generated"
        if not (folder / "done").exists():
            console.rule(f"[bold]GAN ({gan.backend}) for {name} · {feature}")
            options = {"stylegan_dir": gan.stylegan_dir} if gan.stylegan_dir else {}
            train_gan(
                data_dir,
                folder / "model",
                backend=gan.backend,
                steps=gan.steps,
                size=gan.size,
                seed=self.recipe.seed,
                **options,
            )
            generate_images(folder / "model", gan.images_per_class, generated)
            (folder / "done").write_text("ok\n")
        return str(generated)

    def _stage_cells(self, stage: Stage, stage_runs: dict[str, dict[tuple[str, str], str]]) -> list[Cell]:
        cells = []
        for feature in stage.features:
            data_dir = self._prepare(stage.dataset, feature)
            gan_dir = self._gan_images(stage.dataset, feature, data_dir) if "gan" in stage.augmentations else None
            for arch in stage_archs(self.recipe, stage):
                own = self._arch_input(arch)
                arch_data = self._prepare(stage.dataset, feature, own) if own else data_dir
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
                        cell.run_dir = str(self.out / "runs" / cell.folder_name)
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

    `track="mlflow"` logs every cell trained to MLflow (experiment: the recipe's), see tracking.py.
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
        write_html_report(Path(out), show)
    if show:
        for table in results_tables(summary.rows):
            console.print(table)
        console.print(
            f"{len(summary.ran)} cell(s) trained, {len(summary.skipped)} already done, {len(summary.failed)} failed "
            f"in {time.time() - started:.0f} s; results in {Path(out) / 'results.md'}"
        )
    return summary


def show_results(out: str | Path) -> list[dict]:
    """Reprint the tables of a finished (or partial) run folder."""
    rows = load_results(out)
    for table in results_tables(rows):
        console.print(table)
    return rows
