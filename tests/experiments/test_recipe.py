"""Recipes, the grid runner, resume, results tables and Experiment B's weight hand-over."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from mer_fastai.errors import Interrupted, MerError
from mer_fastai.experiments import executors
from mer_fastai.experiments.recipe import builtin_names, load_recipe, parse_override
from mer_fastai.experiments.recipe_schema import recipe_settings
from mer_fastai.experiments.runner import run_recipe
from mer_fastai.models.modelfile import read_model, read_model_file
from mer_fastai.report.results import load_results

TINY_RECIPE = """
experiment: tiny
description: a test grid
datasets:
  small:
    demo: {clips_per_class: 3, seconds: 2.0, seed: 0}
  big:
    demo: {clips_per_class: 4, seconds: 2.0, seed: 1}
stages:
  - name: first
    dataset: small
    features: [valence]
    modes: [freeze, whole]
archs: [squeezenet1_0, alexnet]
epochs: 1
bs: 4
size: 64
lr: 0.001
weights: none
num_workers: 0
valid_pct: 0.25
spectrogram: {segment_seconds: 1.0, n_mels: 32}
"""


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE)
    return path


def _check_refused(recipe: Path, cases: list[tuple[list[str], str]]) -> None:
    """Each list of overrides is refused in one line holding its message."""
    for overrides, message in cases:
        with pytest.raises(MerError) as error:
            load_recipe(recipe, overrides)
        assert message in str(error.value) and "\n" not in str(error.value), overrides


def test_builtin_recipes_load_and_describe_the_study(monkeypatch):
    assert {"expA", "expB", "expC", "demo", "dimensional", "scratch", "musicnn"} <= set(builtin_names())
    from typer.testing import CliRunner

    from mer_fastai._plumbing.progress import console
    from mer_fastai.cli.main import app

    monkeypatch.setattr(console, "_width", 200)  # the shared console may have been sized by an earlier test
    listing = CliRunner().invoke(app, ["recipes"])
    assert "│ expB        │" in listing.output and "│ bigset, transfer, musicnn │ 40    │" in listing.output
    assert (
        listing.exit_code == 0 and "dimensional" in listing.output and "valence + energy regression" in listing.output
    )
    exp_a = load_recipe("expA")
    assert exp_a.archs == [
        "resnext101_32x8d",
        "alexnet",
        "vgg16_bn",
        "squeezenet1_0",
        "densenet121",
        "inception_v3",
    ]
    assert exp_a.stages[0].features == ["emotions", "energy", "valence", "tension"] and exp_a.epochs == 20
    exp_b = load_recipe("expB")
    assert [s.name for s in exp_b.stages] == ["bigset", "transfer", "musicnn"]
    assert exp_b.stages[1].weights_from == "bigset"
    assert exp_b.stages[2].archs == ["musicnn-msd"] and exp_b.weights == "pretrained"  # Experiment B's real form
    music = load_recipe("musicnn")
    assert music.archs == ["musicnn-msd", "musicnn-mtt"] and music.spectrogram == {"preset": "musicnn"}
    assert music.folds == 5 and music.stages[0].modes == ["freeze", "whole"]
    assert load_recipe("expC").stages[0].augmentations == ["none", "gan"]
    dimensional = load_recipe("dimensional")
    assert (dimensional.task, dimensional.targets, dimensional.loss) == ("regression", ["valence", "energy"], "ccc")
    assert dimensional.stages[0].features == ["valence+energy"] and all(
        s.is_demo for s in dimensional.datasets.values()
    )
    scratch = load_recipe("scratch")
    assert (scratch.archs, scratch.weights, scratch.norm, scratch.folds) == (["melcnn"], "none", "dataset", 5)
    assert (scratch.augment, scratch.mixup, scratch.label_smoothing) == ("specaugment", 0.0, 0.0)
    for name in builtin_names():
        text = (Path(__file__).parents[2] / "recipes" / f"{name}.yaml").read_text()
        assert text.startswith("#") and f"mer-fastai run {name}" in text  # headed by how to run it


def test_overrides_filters_and_validation_errors(tiny_recipe):
    assert parse_override("datasets.small.audio=../x") == (["datasets", "small", "audio"], "../x")
    assert parse_override("epochs=3") == (["epochs"], 3)
    assert parse_override("weights=none") == (["weights"], "none")
    recipe = load_recipe(
        tiny_recipe, ["epochs=3", "datasets.small.group_by=Artist"], ["energy"], ["alexnet"], ["whole"]
    )
    assert (recipe.epochs, recipe.datasets["small"].group_by, recipe.archs) == (3, "Artist", ["alexnet"])
    assert recipe.stages[0].features == ["energy"] and recipe.stages[0].modes == ["whole"]
    cases = [
        (["epoch=3"], "unknown key 'epoch' (did you mean 'epochs'?)"),
        (["epochs=many"], "'epochs' must be a whole number"),
        (["datasets.small.labls=x"], "unknown key 'datasets.small.labls'"),
        (["lr=fast"], "'lr' must be a number or 'auto'"),
        (["noequals"], "expected key=value"),
        (["stages=[{name: a, dataset: nowhere, features: [valence]}]"], "data set 'nowhere'"),
        (["spectrogram.colour=1"], "colour"),
    ]
    _check_refused(tiny_recipe, cases)
    with pytest.raises(MerError, match="unknown architecture"):
        load_recipe(tiny_recipe, archs=["resnet9000"])
    with pytest.raises(MerError, match="unknown recipe 'expZ'"):
        load_recipe("expZ")


def test_grid_runs_resumes_and_retries_a_failed_cell(tiny_recipe, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_run_cell = executors.run_cell

    def flaky(cell):
        if cell.arch == "alexnet" and cell.mode == "whole":
            raise RuntimeError("simulated crash")
        return real_run_cell(cell)

    monkeypatch.setattr(executors, "run_cell", flaky)
    first = run_recipe(tiny_recipe, out, show=False)
    assert len(first.ran) == 3 and list(first.failed.values()) == ["RuntimeError: simulated crash"]
    rows = load_results(out)
    assert len(rows) == 3
    state = json.loads((out / "state.json").read_text())["cells"]
    assert [v["status"] for v in state.values()].count("failed") == 1
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}

    monkeypatch.setattr(executors, "run_cell", real_run_cell)
    second = run_recipe(tiny_recipe, out, show=False)
    assert len(second.ran) == 1 and len(second.skipped) == 3 and not second.failed
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished cells untouched
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4
    assert {(r["arch"], r["mode"]) for r in rows} == {
        (a, m) for a in ("squeezenet1_0", "alexnet") for m in ("freeze", "whole")
    }
    assert all(r["experiment"] == "tiny" and r["feature"] == "valence" and r["weights"] == "none" for r in rows)
    table = (out / "results.md").read_text()
    assert "| alexnet |" in table and "valence · freeze" in table and "valence · whole" in table
    assert (out / "results_heatmap.png").stat().st_size > 5000

    third = run_recipe(tiny_recipe, out, show=False)
    assert not third.ran and len(third.skipped) == 4
    changed = run_recipe(tiny_recipe, out, overrides=["epochs=2"], archs=["alexnet"], modes=["whole"], show=False)
    assert len(changed.ran) == 1  # a changed setting reruns the cell instead of skipping it


def test_experiment_b_starts_stage_two_from_stage_one(tiny_recipe, tmp_path):
    two_stage = (
        TINY_RECIPE.split("stages:")[0]
        + """stages:
  - name: bigset
    dataset: big
    features: [energy]
    modes: [whole]
  - name: transfer
    dataset: small
    features: [energy]
    modes: [freeze]
    weights_from: bigset
archs: [squeezenet1_0]
epochs: 1
bs: 4
size: 64
lr: 0.001
weights: none
num_workers: 0
spectrogram: {segment_seconds: 1.0, n_mels: 32}
"""
    )
    path = tmp_path / "b.yaml"
    path.write_text(two_stage)
    out = tmp_path / "out"
    summary = run_recipe(path, out, show=False)
    assert len(summary.ran) == 2 and not summary.failed
    rows = {r["stage"]: r for r in load_results(out)}
    assert rows["transfer"]["weights"] == "bigset"
    stage_one, _ = read_model_file(Path(rows["bigset"]["run_dir"]))
    stage_two, _ = read_model_file(Path(rows["transfer"]["run_dir"]))
    body = [k for k in stage_one if k.startswith("0.")]
    assert all(torch.equal(stage_one[k], stage_two[k]) for k in body)  # freeze: the body is stage 1's
    config = json.loads((Path(rows["transfer"]["run_dir"]) / "config.json").read_text())
    assert config["weights"] == rows["bigset"]["run_dir"]


def test_results_command_reprints_and_missing_folder_is_clear(tmp_path):
    from typer.testing import CliRunner

    from mer_fastai.cli.main import app

    result = CliRunner().invoke(app, ["results", str(tmp_path)])
    assert isinstance(result.exception, MerError) and "no results.csv" in str(result.exception)


def test_recipes_ship_inside_the_wheel(tmp_path):
    root = Path(__file__).parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("mer_fastai-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = ("expA", "expB", "expC", "demo", "dimensional", "scratch")
    assert {f"mer_fastai/recipes/{n}.yaml" for n in shipped} <= set(names)


def test_results_tables_compare_transfer_and_augmentation():
    from mer_fastai.report.results import results_markdown

    base = {"dataset": "small", "arch": "alexnet", "mode": "whole", "macro_f1": 0.5}
    rows = [
        {
            **base,
            "experiment": "expA",
            "stage": "imagenet",
            "feature": "valence",
            "weights": "imagenet",
            "augmentation": "none",
            "accuracy": 0.5,
        },
        {
            **base,
            "experiment": "expB",
            "stage": "transfer",
            "feature": "valence",
            "weights": "bigset",
            "augmentation": "none",
            "accuracy": 0.625,
        },
        {
            **base,
            "experiment": "expC",
            "stage": "gan",
            "feature": "emotions",
            "weights": "imagenet",
            "augmentation": "none",
            "accuracy": 0.6,
        },
        {
            **base,
            "experiment": "expC",
            "stage": "gan",
            "feature": "emotions",
            "weights": "imagenet",
            "augmentation": "gan",
            "accuracy": 0.55,
        },
    ]
    table = results_markdown(rows)
    assert (
        "| alexnet | valence · whole | 0.500 (expA, weights imagenet) | "
        "0.625 (expB, weights bigset) | +0.125 |" in table
    )
    assert "| alexnet | emotions · whole | 0.600 (augmentation none) | 0.550 (augmentation gan) | -0.050 |" in table
    assert "emotions · whole · +gan" in table


def fake_train(interrupt: set[str]):
    """A stand-in for the runner's `train`: writes a run folder at once; cells named in `interrupt` get a
    Ctrl-C half-way, after writing part of their results."""
    from mer_fastai.training.fit import RUN_FILES, TrainResult, results_folder

    def trained(data_dir, config, out, show=True):
        with results_folder(Path(out), RUN_FILES) as stage:
            (stage / "lr_find.png").write_bytes(b"plot")
            if f"{config.arch}-{config.mode}" in interrupt:
                (stage / "metrics.json").write_text('{"accuracy": ')
                raise KeyboardInterrupt
            metrics = {"epochs": config.epochs, "lr": 1e-3, "accuracy": 0.5, "macro_f1": 0.4, "seconds": 1.0}
            (stage / "metrics.json").write_text(json.dumps(metrics))
        return TrainResult(Path(out), 1e-3, metrics)

    return trained


def test_ctrl_c_in_a_cell_keeps_results_and_state_consistent(tiny_recipe, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(executors, "train", fake_train({"alexnet-whole"}))
    with pytest.raises(Interrupted, match=f"^3 finished cell\\(s\\) kept in {re.escape(str(out / 'results.csv'))}$"):
        run_recipe(tiny_recipe, out, show=False)
    state = json.loads((out / "state.json").read_text())["cells"]
    rows = load_results(out)
    assert [v["status"] for v in state.values()] == ["done"] * 3  # the interrupted cell is not marked finished
    assert [r["run_dir"] for r in rows] == [v["row"]["run_dir"] for v in state.values()]
    interrupted = out / "runs" / "tiny-first-small-valence-alexnet-whole-none"
    assert not interrupted.exists()  # its fresh run folder is gone, nothing half-written stays
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".partial"))
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    assert len(stamps) == 3

    monkeypatch.setattr(executors, "train", fake_train(set()))
    resumed = run_recipe(tiny_recipe, out, show=False)
    assert resumed.ran == [interrupted.name] and len(resumed.skipped) == 3
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # earlier cells untouched

    finished = (interrupted / "metrics.json").read_text()
    monkeypatch.setattr(executors, "train", fake_train({"alexnet-whole"}))
    with pytest.raises(KeyboardInterrupt):  # a changed setting reruns the cell, and Ctrl-C stops it
        run_recipe(tiny_recipe, out, overrides=["epochs=2"], archs=["alexnet"], modes=["whole"], show=False)
    assert (interrupted / "metrics.json").read_text() == finished  # its finished run is kept as it was
    assert len(load_results(out)) == 4


def test_run_out_is_checked_locked_and_not_left_empty(tiny_recipe, tmp_path):
    from mer_fastai._plumbing.files import output_folder

    taken = tmp_path / "file"
    taken.write_text("x")
    with pytest.raises(MerError, match="is a file, not a folder"):
        run_recipe(tiny_recipe, taken, show=False)
    busy = tmp_path / "busy"
    with output_folder(busy), pytest.raises(MerError, match=r"another mer-fastai process \(PID \d+\)"):
        run_recipe(tiny_recipe, busy, show=False)
    missing_audio = tmp_path / "never"
    with pytest.raises(MerError):
        run_recipe(tiny_recipe, missing_audio, overrides=[f"datasets.small.audio={tmp_path / 'no-audio'}"], show=False)
    assert not missing_audio.exists()


def test_invalid_yaml_is_one_line_with_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("experiment: x\nstages:\n  - name: a\n   dataset: b\n")
    with pytest.raises(MerError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}, line 4, column ") and "not valid YAML" in message and "\n" not in message


def test_folds_and_repeats_are_checked(tiny_recipe):
    recipe = load_recipe(tiny_recipe, ["folds=3", "repeats=2"])
    assert (recipe.folds, recipe.repeats) == (3, 2)
    assert load_recipe(tiny_recipe).folds is None  # default: one train/valid split
    cases = [
        (["folds=1"], "'folds' must be at least 2"),
        (["folds=two"], "'folds' must be a whole number"),
        (["folds=2", "repeats=0"], "'repeats' must be at least 1"),
        (["repeats=2"], "'repeats' needs 'folds'"),
        (["folds=2", "patience=2"], "'patience' with 'folds'"),
        (["folds=2", "stages=[{name: a, dataset: small, features: [valence], augmentations: [none, gan]}]"],
         "augmentation 'gan' with 'folds'"),
    ]  # fmt: skip
    _check_refused(tiny_recipe, cases)


def test_a_grid_with_folds_cross_validates_each_cell(tiny_recipe, tmp_path):
    out = tmp_path / "out"
    grid = {"archs": ["squeezenet1_0"], "modes": ["whole"], "overrides": ["folds=2"], "show": False}
    summary = run_recipe(tiny_recipe, out, **grid)
    assert len(summary.ran) == 1 and not summary.failed
    [row] = load_results(out)
    run_dir = Path(row["run_dir"])
    assert run_dir.name.endswith("-cv2") and row["folds"] == "2"
    cv = json.loads((run_dir / "cv.json").read_text())
    assert cv["folds"] == 2 and len(cv["runs"]) == 2
    for score in ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1"):
        folds = [run["scores"][score] for run in cv["runs"]]
        sd = float(torch.tensor(folds, dtype=torch.float64).std())  # n − 1, as cv.json's
        assert float(row[score]) == pytest.approx(sum(folds) / 2, abs=1e-4), score  # the mean over folds
        assert float(row[f"{score}_sd"]) == pytest.approx(sd, abs=1e-4), score
    assert row["test_accuracy"] == ""  # the folds never see a test split
    markdown = (out / "results.md").read_text()
    cell = f"| squeezenet1_0 | {float(row['accuracy']):.3f} ± {float(row['accuracy_sd']):.3f} / "
    assert cell in markdown and "mean ± standard deviation over the folds" in markdown
    page = (out / "report.html").read_text()
    assert f"{float(row['accuracy']):.3f} ± {float(row['accuracy_sd']):.3f}" in page  # the HTML table too
    assert f'id="cell-{run_dir.name}' in page and "fold 1:" in page  # each fold's run section, linked from the row

    again = run_recipe(tiny_recipe, out, **grid)
    assert not again.ran and again.skipped == summary.ran  # a finished cross-validated cell is skipped
    plain = run_recipe(tiny_recipe, out, archs=["squeezenet1_0"], modes=["whole"], show=False)
    assert plain.ran == summary.ran and (run_dir / "cv.json").is_file()  # without folds: retrained in its own folder
    [row] = load_results(out)
    assert row["folds"] == row["accuracy_sd"] == "" and not row["run_dir"].endswith("-cv2")


def test_a_cross_validated_cell_writes_its_fold_ensemble_as_cv_does(tiny_recipe, tmp_path):
    """`ensemble.safetensors` of the fold models in the cell folder (what recipes/scratch.yaml promises); a cell
    folder without it (written before) is not finished: rerunning adds it without training its folds again."""
    out = tmp_path / "out"
    grid = {"archs": ["squeezenet1_0"], "modes": ["whole"], "overrides": ["folds=2"], "show": False}
    summary = run_recipe(tiny_recipe, out, **grid)
    [row] = load_results(out)
    run_dir = Path(row["run_dir"])
    ensemble = run_dir / "ensemble.safetensors"
    folds = [run_dir / "folds" / fold / "model.safetensors" for fold in ("0", "1")]
    meta = read_model(run_dir)[1]  # a cross-validation folder means its fold ensemble, as for predict/evaluate
    assert meta.is_ensemble and [member["source"] for member in meta.members] == list(map(str, folds))
    checksums = [read_model_file(fold)[1]["checksum"] for fold in folds]
    assert [member["checksum"] for member in meta.members] == checksums
    trained = [fold.stat().st_mtime_ns for fold in folds]
    ensemble.unlink()
    healed = run_recipe(tiny_recipe, out, **grid)
    assert healed.ran == summary.ran and read_model(ensemble)[1].members == meta.members
    assert [fold.stat().st_mtime_ns for fold in folds] == trained  # the folds were not trained again
    assert not run_recipe(tiny_recipe, out, **grid).ran  # now finished


TINY_DEMO = "{clips_per_class: 3, seconds: 2.0, seed: 0}"
MOODS = "[anger, fear, happy, sad, tender]"  # the demo ratings file's emotion columns, read as mood shares


def test_task_keys_are_checked_in_one_line_naming_the_key(tiny_recipe):
    regression = ["task=regression", "targets=[valence, energy]", "stages=[{name: va, dataset: small}]"]
    recipe = load_recipe(tiny_recipe, [*regression, "loss=ccc"])
    assert (recipe.task, recipe.targets, recipe.stages[0].features) == ("regression", ["valence", "energy"],
                                                                        ["valence+energy"])  # fmt: skip
    moods = load_recipe(tiny_recipe, ["task=multilabel", f"targets={MOODS}", "stages=[{name: m, dataset: small}]"])
    assert moods.stages[0].features == ["moods"] and moods.threshold is None
    assert load_recipe(tiny_recipe).task == "classification"
    cases = [
        (["targets=[valence]"], "'targets' names numeric labels columns (regression targets or moods); a "
                                 "classification recipe has classes: drop it, or choose a 'task' that learns them"),
        (["threshold=0.3"], "'threshold' reads mood columns; a classification recipe has no moods: drop it"),
        (["task=ordinal"], "'task' must be one of classification, regression, multilabel"),
        (["loss=ccc"], "'loss' ccc: is a regression loss (classification uses cross-entropy, multilabel BCE)"),
        (["monitor=ccc"], "'monitor' ccc: not a score of a classification recipe; choose auto or accuracy"),
        (["task=regression", "stages=[{name: va, dataset: small}]"], "'targets' is missing: a regression recipe"),
        (regression[:2], "stages[0] (first): 'features' (or --feature) names the one label to classify; a "
                         "regression recipe learns all its targets at once: drop it"),
        ([*regression, "monitor=macro_f1"], "'monitor' macro_f1: not a score of a regression recipe"),
        ([*regression, "threshold=0.5"], "'threshold' reads mood columns"),
        ([*regression, "balanced=true"], "'balanced' weights classes; a regression recipe has no classes: drop it"),
        ([*regression, "mixup=0.4"], "'mixup' blends class labels; a regression recipe has no classes"),
        ([*regression, "label_smoothing=0.1"], "'label_smoothing' spreads class labels; a regression recipe"),
        ([*regression, "datasets.small.cuts=[3, 6]"], "'datasets.small.cuts' bins ratings into classes"),
        ([*regression, "datasets.small.label_column=mood"], "'datasets.small.label_column' names classes"),
        ([*regression, "stages=[{name: va, dataset: small, augmentations: [gan]}]"], "augmentation 'gan' adds"),
        (["task=multilabel", "stages=[{name: m, dataset: small}]"],
         "'targets' or 'datasets.small.label_column': a multilabel recipe reads its moods from"),
        (["task=multilabel", "threshold=0.5", "datasets.small.label_column=moods",
          "stages=[{name: m, dataset: small}]"],
         "'threshold' reads the vote shares of 'targets' mood columns; a multilabel recipe reading "
         "'datasets.small.label_column' has none"),
        ([*regression, "datasets.small.audio=clips"], "'datasets.small.labels' is missing: a regression recipe reads"),
        ([*regression, "datasets.small.allow_outliers=true", "task=multilabel", f"targets={MOODS}"],
         "'datasets.small.allow_outliers' keeps outlying regression targets; a multilabel recipe has none"),
        (["task=multilabel", f"targets={MOODS}", "threshold=1.5", "stages=[{name: m, dataset: small}]"],
         "'threshold' must be a number above 0 and at most 1 (got 1.5)"),
        (["datasets.small.cuts=[3, .nan]"], "'datasets.small.cuts' must be a finite number (got nan)"),
    ]  # fmt: skip
    _check_refused(tiny_recipe, cases)


def test_the_dimensional_recipe_runs_a_regression_grid_on_the_demo_data(tmp_path):
    out = tmp_path / "out"
    tiny = [f"datasets.soundtracks.demo={TINY_DEMO}", "spectrogram={segment_seconds: 1.0, n_mels: 32}",
            "demo_settings={epochs: 1, size: 64, bs: 4, lr: 0.001, weights: none}", "num_workers=0"]  # fmt: skip
    summary = run_recipe("dimensional", out, archs=["squeezenet1_0"], modes=["whole"], overrides=tiny, show=False)
    assert len(summary.ran) == 1 and not summary.failed
    header = next(csv.reader((out / "results.csv").open()))
    assert {"ccc", "r2", "rmse", "track_ccc", "test_track_mae", "ccc_sd", "task"} <= set(header)
    assert "accuracy" not in header
    [row] = load_results(out)
    metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
    assert row["task"] == "regression" and row["feature"] == "valence+energy" and metrics["monitor"] == "ccc"
    for name in ("ccc", "r2", "rmse", "mae"):
        assert float(row[name]) == pytest.approx(metrics[name], abs=1e-4), name
        assert float(row[f"track_{name}"]) == pytest.approx(metrics["track"][name], abs=1e-4), name
    markdown = (out / "results.md").read_text()
    cell = f"| squeezenet1_0 | {float(row['ccc']):.3f} / {float(row['r2']):.3f} / {float(row['rmse']):.3f} |"
    assert "Cells: CCC / R² / RMSE" in markdown and "(regression)" in markdown and cell in markdown
    assert (out / "results_heatmap.png").stat().st_size > 1000
    assert "validation CCC per cell" in (out / "report.html").read_text()


def test_baseline_rows_of_a_grid_with_folds_are_cross_validated_on_the_cells_folds(tiny_recipe, tmp_path):
    """With `baseline: true` and `folds:`, the classic rows are scored on the very folds the cells train on
    (mean ± sd), not on the single split: every row of the table answers the same question."""
    out = tmp_path / "out"
    overrides = ["folds=2", "baseline=true"]
    summary = run_recipe(tiny_recipe, out, archs=["squeezenet1_0"], modes=["whole"], overrides=overrides, show=False)
    assert not summary.failed
    rows = {row["arch"]: row for row in load_results(out)}
    cell, svm = rows["squeezenet1_0"], rows["svm"]
    assert svm["stage"] == "baseline" and svm["folds"] == cell["folds"] == "2" and svm["accuracy_sd"] != ""
    baseline_folds = out / "baseline" / "small-valence" / "folds"
    fold_scores = []
    for fold in ("0", "1"):
        held_out = [read_csv_rows(folder / "data" / "manifest.csv") for folder in
                    (Path(cell["run_dir"]) / "folds" / fold, baseline_folds / fold)]  # fmt: skip
        cnn, classic = ({r["clip_id"] for r in rows if r["split"] == "valid"} for rows in held_out)
        assert cnn == classic and cnn  # the same held-out clips
        fold_scores.append(json.loads((baseline_folds / fold / "svm" / "metrics.json").read_text())["track_accuracy"])
    assert float(svm["track_accuracy"]) == pytest.approx(sum(fold_scores) / 2, abs=1e-4)
    assert "svm | " in (out / "results.md").read_text()


def read_csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_multilabel_grid_with_folds_gives_the_mean_and_sd_of_the_fold_moods(tiny_recipe, tmp_path):
    out = tmp_path / "out"
    moods = ["task=multilabel", f"targets={MOODS}", "stages=[{name: moods, dataset: small}]", "folds=2"]
    summary = run_recipe(tiny_recipe, out, archs=["squeezenet1_0"], modes=["whole"], overrides=moods, show=False)
    assert len(summary.ran) == 1 and not summary.failed
    [row] = load_results(out)
    assert row["task"] == "multilabel" and row["feature"] == "moods" and row["folds"] == "2"
    cv = json.loads((Path(row["run_dir"]) / "cv.json").read_text())
    assert cv["task"] == "multilabel" and cv["targets"] == re.findall(r"\w+", MOODS)
    for score in ("macro_f1", "micro_f1", "map", "track_macro_f1", "track_map"):
        folds = [run["scores"][score] for run in cv["runs"]]
        sd = float(torch.tensor(folds, dtype=torch.float64).std())
        assert float(row[score]) == pytest.approx(sum(folds) / 2, abs=1e-4), score
        assert float(row[f"{score}_sd"]) == pytest.approx(sd, abs=1e-4), score
    markdown = (out / "results.md").read_text()
    assert "Cells: macro-F1 / micro-F1 / mAP" in markdown
    assert f"{float(row['macro_f1']):.3f} ± {float(row['macro_f1_sd']):.3f} / " in markdown


def test_the_scratch_recipe_cross_validates_melcnn_with_its_levers_out_of_the_box(tmp_path):
    """`mer-fastai run scratch` on the built-in demo: one cross-validated melcnn cell trained with the recipe's
    levers (demo_settings shrink epochs and size only), its row the mean ± sd of cv.json's folds."""
    summary = run_recipe("scratch", tmp_path / "out", show=False)
    assert len(summary.ran) == 1 and not summary.failed
    [row] = load_results(tmp_path / "out")
    cv = json.loads((Path(row["run_dir"]) / "cv.json").read_text())
    assert cv["folds"] == 5 and row["folds"] == "5" and row["arch"] == "melcnn"
    levers = {key: cv["config"][key] for key in ("norm", "augment", "mixup", "label_smoothing", "weights", "keep")}
    assert levers == {
        "norm": "dataset",
        "augment": "specaugment",
        "mixup": 0.0,
        "label_smoothing": 0.0,
        "weights": "none",
        "keep": "last",  # each fold's last epoch: nothing chosen on its held-out clips
    }
    assert float(row["track_accuracy"]) == pytest.approx(cv["summary"]["track_accuracy"]["mean"], abs=1e-4)
    assert float(row["track_accuracy_sd"]) == pytest.approx(cv["summary"]["track_accuracy"]["sd"], abs=1e-4)
    stats = read_model_file(Path(row["run_dir"]) / "folds" / "0")[1]["stats"]
    assert stats[0][0] != pytest.approx(0.485)  # the fold's own training statistics, not ImageNet's


def test_names_that_become_paths_are_one_safe_component(tiny_recipe):
    """Experiment, data-set, stage and feature names (and the GAN backend) become file and folder names under --out."""
    stage = "stages=[{name: a, dataset: small, features: [valence]}]"
    cases = [
        (["experiment=x/../../../victim"], "experiment 'x/../../../victim' is not a safe file name ('/')"),
        (["experiment=.."], "experiment '..' is not a safe file name"),
        (
            ['datasets={"../../../escaped": {}}', "stages=[{name: a, dataset: ../../../escaped, features: [valence]}]"],
            "data set name '../../../escaped'",
        ),
        (["datasets={'a\\b': {}}", "stages=[{name: a, dataset: 'a\\b', features: [valence]}]"], "('\\\\')"),
        ([stage.replace("name: a", "name: x/y")], "stages[0] name 'x/y'"),
        ([stage.replace("[valence]", "[../v]")], "stages[0] (a) feature '../v'"),
        (["task=regression", "targets=[valence, ../energy]", "stages=[{name: a, dataset: small}]"], "targets"),
        (["gan.backend=../../x"], "'gan.backend' must be one of diffaug, stylegan2-ada"),
    ]
    _check_refused(tiny_recipe, cases)


def test_a_grid_writes_only_inside_out_and_never_over_its_inputs(tiny_recipe, tmp_path):
    """A link under --out that leads outside, an --out inside the audio, an input where the grid writes: each is one
    line before anything is written."""
    elsewhere, out = tmp_path / "elsewhere", tmp_path / "out"
    elsewhere.mkdir()
    out.mkdir()
    (out / "data").symlink_to(elsewhere)
    with pytest.raises(MerError, match="would be written outside --out"):
        run_recipe(tiny_recipe, out, show=False)
    assert not list(elsewhere.iterdir()) and [p.name for p in out.iterdir()] == ["data"]
    audio = tmp_path / "audio"
    (audio / "happy").mkdir(parents=True)
    with pytest.raises(MerError, match="lies inside the audio folder of data set 'small'"):
        run_recipe(tiny_recipe, audio / "grid", overrides=[f"datasets.small.audio={audio}"], show=False)
    assert not (audio / "grid").exists()
    grid = tmp_path / "grid"
    recipe = grid / "recipe-tiny.json"  # the file the grid writes its recipe to
    recipe.parent.mkdir()
    recipe.write_text(TINY_RECIPE)
    with pytest.raises(MerError, match="the grid writes here, but it holds the recipe"):
        run_recipe(recipe, grid, show=False)
    assert recipe.read_text() == TINY_RECIPE and [p.name for p in grid.iterdir()] == ["recipe-tiny.json"]


def test_an_explicit_setting_wins_over_demo_settings_and_the_run_says_so(tiny_recipe, tmp_path, monkeypatch, capsys):
    tiny_recipe.write_text(TINY_RECIPE + "demo_settings: {epochs: 2, bs: 8}\n")
    assert recipe_settings(load_recipe(tiny_recipe))["epochs"] == 2  # the demo's own setting on demo data
    trained, fake = [], fake_train(set())

    def recording(data_dir, config, out, show=True):
        trained.append(config)
        return fake(data_dir, config, out, show)

    monkeypatch.setattr(executors, "train", recording)
    run_recipe(tiny_recipe, tmp_path / "out", overrides=["epochs=5"], archs=["alexnet"], modes=["whole"])
    assert [(config.epochs, config.bs) for config in trained] == [(5, 8)]  # bs: no --set, so the demo's
    printed = " ".join(capsys.readouterr().err.split())
    assert "--set epochs=5 is used instead of demo_settings.epochs=2 (an explicit setting wins)" in printed
    assert "demo_settings.bs" not in printed


def test_a_loaded_recipe_with_overrides_is_refused(tiny_recipe, tmp_path):
    with pytest.raises(MerError, match="apply while a recipe is loaded"):
        run_recipe(load_recipe(tiny_recipe), tmp_path / "out", overrides=["epochs=5"], show=False)
    assert not (tmp_path / "out").exists()


def test_a_stage_of_musicnn_gets_a_data_set_in_its_own_input(tmp_path):
    """Experiment B's musicnn stage: the recipe's spectrograms are 1 s dB images, musicnn's cells read the same
    clips and split prepared with `--spectrogram musicnn`; the grid-wide size does not apply to them."""
    from mer_fastai.data.dataset import read_manifest, read_spec
    from mer_fastai.data.spectrogram import musicnn_spec

    recipe = tmp_path / "b.yaml"
    music = (
        "  - name: music\n    dataset: small\n    features: [valence]\n    modes: [freeze]\n    archs: [musicnn-msd]\n"
    )
    text = TINY_RECIPE.replace("seconds: 2.0, seed: 0", "seconds: 3.5, seed: 0")
    recipe.write_text(text.replace("archs: [squeezenet1_0, alexnet]", music + "archs: [squeezenet1_0, alexnet]"))
    loaded = load_recipe(recipe, archs=["squeezenet1_0", "musicnn-msd"], modes=["freeze"])
    assert [stage.archs for stage in loaded.stages] == [None, ["musicnn-msd"]]
    summary = run_recipe(recipe, tmp_path / "out", archs=["squeezenet1_0"], modes=["freeze"], show=False)
    assert len(summary.ran) == 1  # the --arch filter applies to a stage's own archs too
    summary = run_recipe(recipe, tmp_path / "out", modes=["freeze"], show=False)
    rows = {(r["stage"], r["arch"]): r for r in load_results(tmp_path / "out")}
    assert set(rows) == {("first", "squeezenet1_0"), ("first", "alexnet"), ("music", "musicnn-msd")}
    config = json.loads((Path(rows[("music", "musicnn-msd")]["run_dir"]) / "config.json").read_text())
    own, shared = Path(config["data_dir"]), Path(tmp_path / "out" / "data" / "small-valence")
    assert own.name == "small-valence-musicnn" and read_spec(own) == musicnn_spec() and config["size"] is None
    clips = {(row.clip_id, row.split) for row in read_manifest(own)}
    assert clips == {(row.clip_id, row.split) for row in read_manifest(shared)}  # the same clips, the same split


def test_the_spectrogram_block_is_parsed_once(tiny_recipe, tmp_path, monkeypatch):
    """`load_recipe` parses the recipe's spectrogram into one `SpecConfig`, which its checks and the runner read;
    the recipe as run keeps the block as written."""
    from mer_fastai.data.spectrogram import SpecConfig
    from mer_fastai.experiments.runner import RecipeRun

    parsed, original = [], SpecConfig.from_dict.__func__

    def counted(cls, values, source="spectrogram settings"):
        parsed.append(dict(values))
        return original(cls, values, source)

    monkeypatch.setattr(SpecConfig, "from_dict", classmethod(counted))
    recipe = load_recipe(tiny_recipe)
    run = RecipeRun(recipe, tmp_path / "out")
    assert parsed == [{"segment_seconds": 1.0, "n_mels": 32}]
    assert recipe.spec == SpecConfig(segment_seconds=1.0, n_mels=32) and run.data.spec is recipe.spec
    assert "spec" not in recipe.to_dict() and recipe.to_dict()["spectrogram"] == parsed[0]
    with pytest.raises(MerError, match=r"tiny.yaml: spectrogram: unknown spectrogram setting\(s\) colour"):
        load_recipe(tiny_recipe, ["spectrogram.colour=1"])
