"""A data set opened once (`tasks.opened`): the record, its one-line refusals, and the measured targets of issue 29
(each file read once per run; the readers and the task lookup called from few places)."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mer_fastai.api.training import run_cv, train
from mer_fastai.data.dataset import DATASET_FILE, MANIFEST_FILE, read_info, read_manifest, read_spec
from mer_fastai.data.spectrogram import SPEC_FILE
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.modelfile import read_model
from mer_fastai.runs.layout import FOLD_DATA, MODEL_FILE, REPORT_HTML
from mer_fastai.tasks.opened import Dataset, as_dataset, open_dataset
from mer_fastai.tasks.registry import get_task
from tests.inference.test_predict import TINY_CONFIG

PACKAGE = Path(__file__).parents[2] / "mer_fastai"
WATCHED = (DATASET_FILE, SPEC_FILE)


def test_open_dataset_reads_the_three_files_and_resolves_the_task(tiny_data):
    dataset = open_dataset(str(tiny_data))
    assert dataset.path == tiny_data and dataset.info == read_info(tiny_data)
    assert list(dataset.rows) == read_manifest(tiny_data) and dataset.spec == read_spec(tiny_data)
    assert dataset.task is get_task(dataset.info.task)
    assert as_dataset(dataset) is dataset and isinstance(as_dataset(tiny_data), Dataset)
    valid = [row for row in read_manifest(tiny_data) if row.split == "valid"]
    assert dataset.split("valid") == valid and dataset.items("valid") == [row.path(tiny_data) for row in valid]
    assert dataset.training_items()[1] == dataset.items("valid") and dataset.split("test") == []
    with pytest.raises(MerError, match="unknown split 'holdout'; choose one of train, valid, test"):
        dataset.split("holdout")


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (DATASET_FILE, "{data}: no dataset.json; make the data set with `mer-fastai prepare` first"),
        (MANIFEST_FILE, "{data}/manifest.csv: not found; rerun `mer-fastai prepare` with the same options"),
        (SPEC_FILE, "{data}/spectrogram.json: missing; is {data} a data set made by `mer-fastai prepare`?"),
    ],
)
def test_each_missing_file_is_one_line_naming_it(tiny_data, tmp_path, broken, message):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / broken).unlink()
    with pytest.raises(MerError) as caught:
        open_dataset(data)
    assert str(caught.value).startswith(message.format(data=data)) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"task": "ordinal"},
            "task 'ordinal' is not one of classification, regression, multilabel; prepare the data set again",
        ),
        ({"task": "regression"}, "a regression data set names its targets, this one none; prepare the data set again"),
    ],
)
def test_an_unknown_task_or_one_without_its_targets_is_one_line_naming_the_file(tiny_data, tmp_path, change, message):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    values = json.loads((data / DATASET_FILE).read_text())
    (data / DATASET_FILE).write_text(json.dumps({**values, **change}))
    assert read_info(data).task == change["task"]  # the data layer keeps the text; the registry judges it
    with pytest.raises(MerError) as caught:
        open_dataset(data)
    assert str(caught.value) == f"{data / DATASET_FILE}: {message} with `mer-fastai prepare --overwrite`"


def watch_reads(monkeypatch) -> Counter:
    """Count the reads of each data set's dataset.json and spectrogram.json (by resolved path; every read of a file
    opens it through `io.open`)."""
    reads: Counter = Counter()
    original = io.open

    def counted(file, mode="r", *args, **kwargs):
        path = Path(file) if isinstance(file, str | Path) else None
        if path is not None and path.name in WATCHED and not set(mode) & set("wax+"):
            reads[path.resolve()] += 1
        return original(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counted)
    monkeypatch.setattr(builtins, "open", counted)
    return reads


def test_a_training_run_reads_each_file_of_its_data_set_once(tiny_data, tmp_path, monkeypatch):
    reads = watch_reads(monkeypatch)
    train(tiny_data, TINY_CONFIG, tmp_path / "run", show=False)  # the loop, then its pages (report.html included)
    assert reads == {(tiny_data / name).resolve(): 1 for name in WATCHED}
    page = (tmp_path / "run" / REPORT_HTML).read_text()
    assert "mel bands" in page and "clips" in page  # the page describes the data set it did not read again
    meta = read_model(tmp_path / "run" / MODEL_FILE)[1]  # the record holds the task object, the file its name
    assert meta.task is get_task("classification") and Predictor.load(tmp_path / "run").task is meta.task
    assert meta.task == "classification" and "task" not in meta.to_dict()  # the default task is not written
    regression = dataclasses.replace(meta, task="regression", scale=((1.0, 9.0),) * len(meta.classes))
    assert regression.task is get_task("regression") and regression.to_dict()["task"] == "regression"


def test_a_cross_validation_reads_them_once_and_never_its_folds_data_sets_resumed_too(tiny_data, tmp_path, monkeypatch):
    reads = watch_reads(monkeypatch)
    result = run_cv(tiny_data, TINY_CONFIG, tmp_path / "cv", folds=2, ensemble=False, refit=True, show=False)
    assert len(result.fold_dirs) == 2 and result.refit is not None  # the folds, the refit, their pages, report.html
    assert reads == {(tiny_data / name).resolve(): 1 for name in WATCHED}  # each fold's are written, not read
    assert [dataset.path for dataset in result.opened] == [tiny_data, *(d / FOLD_DATA for d in result.fold_dirs),
                                                           result.refit.run_dir / FOLD_DATA]  # fmt: skip
    page = (tmp_path / "cv" / REPORT_HTML).read_text()
    assert "fold 0" in page and page.count("mel bands") >= 3  # the page describes the data sets it did not read
    # Resumed (fold 1 lost): the folds and refit finished earlier are described from their data sets read once
    # each, for the report; the fold trained again is written, not read; the data set itself once, as before.
    shutil.rmtree(result.fold_dirs[1])
    reads.clear()
    resumed = run_cv(tiny_data, TINY_CONFIG, tmp_path / "cv", folds=2, ensemble=False, refit=True, show=False)
    assert (resumed.skipped, resumed.ran) == (["0"], ["1"]) and not resumed.refit.ran
    earlier = [resumed.fold_dirs[0] / FOLD_DATA, resumed.refit.run_dir / FOLD_DATA]
    assert reads == {(folder / name).resolve(): 1 for folder in (tiny_data, *earlier) for name in WATCHED}
    assert [dataset.path for dataset in resumed.opened] == [tiny_data, resumed.fold_dirs[1] / FOLD_DATA]
    page = (tmp_path / "cv" / REPORT_HTML).read_text()
    assert "fold 0" in page and "fold 1" in page and page.count("mel bands") >= 3


def call_sites(name: str) -> list[str]:
    """Where mer_fastai calls the function `name` (by that name, as a function or method)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if called == name:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


@pytest.mark.parametrize(("name", "most"), [("read_info", 3), ("read_spec", 3), ("read_manifest", 3), ("get_task", 8)])
def test_the_readers_and_the_task_lookup_are_called_from_few_places(name, most):
    sites = call_sites(name)
    assert 0 < len(sites) <= most, "\n".join(sites)
