"""Run a recipe: expand its grid into cells, prepare data once, train each cell, keep results safe.

Every finished cell is written to `state.json` and `results.csv` at once (atomically), so a failure
or Ctrl-C never loses finished cells; rerunning skips cells already done with the same settings and
retries failed ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import MerError
from .prepare import prepare_dataset
from .progress import console
from .ray_executor import execute_ray
from .recipe import DatasetSpec, Recipe, Stage, load_recipe, recipe_settings
from .report import write_json
from .results import load_results, results_tables, write_results
from .spectrogram import SpecConfig
from .synth import make_study_style_set
from .tracking import TRACKING_FIELDS, tracking_settings
from .train import TrainConfig, train

STATE_FILE = "state.json"


@dataclass
class Cell:
    """One training of the grid: everything needed to run it anywhere (plain data, picklable)."""

    experiment: str
    stage: str
    dataset: str
    feature: str
    arch: str
    mode: str
    augmentation: str
    data_dir: str
    run_dir: str
    config: dict
    weights_label: str

    @property
    def id(self) -> str:
        parts = (
            self.experiment,
            self.stage,
            self.dataset,
            self.feature,
            self.arch,
            self.mode,
            self.augmentation,
        )
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))

    def fingerprint(self) -> str:
        """Changes whenever a setting of the cell or its data changes."""
        data = json.loads((Path(self.data_dir) / "dataset.json").read_text()).get("settings", {})
        start = Path(self.config["weights"]) / "model.safetensors"
        start_version = start.stat().st_mtime if start.exists() else None  # Experiment B: stage-1 model changed?
        config = {k: v for k, v in self.config.items() if k not in TRACKING_FIELDS}  # tracking reruns nothing
        blob = json.dumps({"config": config, "data": data, "start": start_version}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


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
            and (Path(cell.run_dir) / "metrics.json").exists()
        )

    def record(self, key: str, entry: dict) -> None:
        self.cells[key] = entry
        write_json(self.path, {"cells": self.cells})

    def rows(self) -> list[dict]:
        return [entry["row"] for entry in self.cells.values() if entry.get("status") == "done"]


def cell_row(cell: Cell, metrics: dict) -> dict:
    """The results.csv row of a finished cell."""
    return {
        "experiment": cell.experiment,
        "dataset": cell.dataset,
        "feature": cell.feature,
        "arch": cell.arch,
        "mode": cell.mode,
        "weights": cell.weights_label,
        "augmentation": cell.augmentation,
        "epochs": metrics["epochs"],
        "lr": f"{metrics['lr']:.3g}",
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4),
        "seconds": metrics["seconds"],
        "stage": cell.stage,
        "run_dir": cell.run_dir,
    }


def run_cell(cell: Cell) -> dict:
    """Train one cell and return its results row (runs in this process or on a remote worker)."""
    config = TrainConfig(**cell.config)
    result = train(cell.data_dir, config, cell.run_dir, show=False)
    return cell_row(cell, result.metrics)


def execute_local(cells: list[Cell], on_result: Callable[[Cell, dict | None, str | None], None]) -> None:
    """Run cells one after another in this process."""
    for index, cell in enumerate(cells, 1):
        console.rule(
            f"[bold]cell {index}/{len(cells)}: {cell.stage} · {cell.feature} · {cell.arch} · {cell.mode}"
            + (f" · +{cell.augmentation}" if cell.augmentation != "none" else "")
        )
        try:
            on_result(cell, run_cell(cell), None)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failed cell must not stop the grid
            if not isinstance(exc, MerError):
                console.print(traceback.format_exc(limit=3), style="dim")
            on_result(cell, None, error_message(exc))


def error_message(exc: Exception) -> str:
    """One line for a failed cell: a MerError's own message, else the exception type and first line."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return message if isinstance(exc, MerError) else f"{type(exc).__name__}: {message}"


EXECUTORS: dict[str, Callable[..., None]] = {"local": execute_local, "ray": execute_ray}


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
        self.state = State(out)
        self.summary = RunSummary(out, [])

    def run(self) -> RunSummary:
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / f"recipe-{self.recipe.experiment}.json", asdict(self.recipe))
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
                EXECUTORS[self.executor](todo, self._record, **self.executor_options)
            stage_runs[stage.name] = self._finished_runs(cells)
        self.summary.rows = self.state.rows()
        write_results(self.out, self.summary.rows)
        return self.summary

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
        demo = spec.demo
        folder = self.out / "demo-audio" / f"{name}-{demo.clips_per_class}x{demo.seconds:g}s-seed{demo.seed}"
        ratings = folder / "mean_ratings.csv"
        if not ratings.exists():
            console.print(f"synthesising the built-in demo set {name!r} into {folder}")
            make_study_style_set(folder, demo.clips_per_class, demo.seconds, seed=demo.seed)
        return folder / "audio", ratings

    def _prepare(self, name: str, feature: str) -> Path:
        spec = self.recipe.datasets[name]
        audio, labels = self._audio(name, spec)
        data_dir = self.out / "data" / f"{name}-{feature}"
        prepare_dataset(
            audio,
            data_dir,
            feature,
            labels,
            spec=self.spec,
            valid_pct=self.recipe.valid_pct,
            group_by=spec.group_by,
            seed=self.recipe.seed,
            id_column=spec.id_column,
            label_column=spec.label_column,
            cuts=spec.cuts,
            skip_unlabeled=spec.skip_unlabeled,
        )
        if self.recipe.baseline:
            self._baseline(name, feature, data_dir)
        return data_dir

    def _baseline(self, name: str, feature: str, data_dir: Path) -> None:
        """The classic-ML reference rows for this data set and feature (once per data version)."""
        from .baseline import run_baseline

        marker = f"{self.recipe.experiment}-baseline-{name}-{feature}"
        fingerprint = hashlib.sha1((data_dir / "dataset.json").read_bytes()).hexdigest()[:16]
        if self.state.cells.get(marker, {}).get("fingerprint") == fingerprint:
            return
        console.rule(f"[bold]classic-ML reference for {name} · {feature}")
        for row in run_baseline(data_dir, self.out / "baseline" / f"{name}-{feature}", seed=self.recipe.seed):
            row.update(experiment=self.recipe.experiment, dataset=name, stage="baseline")
            self.state.record(f"{marker}-{row['arch']}", {"status": "done", "fingerprint": fingerprint, "row": row})
        self.state.record(marker, {"status": "marker", "fingerprint": fingerprint})

    def _gan_images(self, name: str, feature: str, data_dir: Path) -> str:
        """Train the GAN on the training split once and generate images per class (Experiment C)."""
        from .gan import generate_images, train_gan

        gan = self.recipe.gan
        folder = self.out / "gan" / f"{name}-{feature}-{gan.backend}-{gan.steps}steps"
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
            for arch in self.recipe.archs:
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
                            **{**self.settings, "weights": weights},
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
                            str(data_dir),
                            "",
                            asdict(config),
                            label,
                        )
                        cell.run_dir = str(self.out / "runs" / cell.id)
                        cells.append(cell)
        return cells


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
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides, features, archs, modes)
    if augment_dirs:
        recipe.augment_dirs = [*recipe.augment_dirs, *map(str, augment_dirs)]
        for stage in recipe.stages:
            if "dirs" not in stage.augmentations:
                stage.augmentations.append("dirs")
    started = time.time()
    tracking = tracking_settings(track, tracking_uri, recipe.experiment)
    summary = RecipeRun(recipe, Path(out), executor, executor_options, tracking).run()
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
