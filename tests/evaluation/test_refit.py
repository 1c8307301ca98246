"""`cv --refit`: one more model on every cross-validated clip, with no validation scores, beside the fold ensemble."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import mer_fastai.evaluation.cv as cv_module
import mer_fastai.evaluation.refit as refit_module
from mer_fastai.api.training import run_cv
from mer_fastai.cli.main import app
from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.runs.layout import CV_FILE, VALID_PREDICTIONS, model_writer
from mer_fastai.tasks.opened import open_dataset
from mer_fastai.training.config import TrainConfig
from tests.conftest import TINY_SPEC
from tests.evaluation.test_cv import CLI_OPTIONS

runner = CliRunner()


def _prepare(audio: Path, data: Path, labels, ratings=None, **task) -> Path:
    from mer_fastai.preparation.prepare import prepare_dataset

    prepare_dataset(audio, data, labels, ratings, spec=TINY_SPEC, workers=1, progress=False, **task)
    return data


def _cv(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["cv", str(data), *CLI_OPTIONS, "--refit", *extra, "--out", str(out)])


@pytest.fixture(scope="module")
def refit_cv(tiny_audio, tmp_path_factory) -> tuple[Path, Path, str]:
    """`cv --folds 2 --refit` on a classification data set with a test split (16 clips: 4 test, 12 cross-validated)."""
    root = tmp_path_factory.mktemp("refit")
    data = _prepare(tiny_audio, root / "data", "emotions", valid_pct=0.25, test_pct=0.25)
    result = _cv(data, root / "cv")
    assert result.exit_code == 0, result.output
    return data, root / "cv", result.output


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_refit_trains_on_every_cross_validated_clip_and_holds_the_test_split_out(refit_cv):
    data, out, _ = refit_cv
    rows = read_manifest(data)
    refit_rows = read_manifest(out / "refit" / "data")
    trained = {row.clip_id for row in refit_rows if row.split == "train"}
    assert trained == {row.clip_id for row in rows if row.split in ("train", "valid")}
    assert {row.clip_id for row in refit_rows if row.split == "test"} == {r.clip_id for r in rows if r.split == "test"}
    assert not [row for row in refit_rows if row.split == "valid"]
    assert len(refit_rows) == len(rows)  # every window of every clip, none twice
    folds = [json.loads((out / "folds" / k / "metrics.json").read_text()) for k in ("0", "1")]
    metrics = json.loads((out / "refit" / "metrics.json").read_text())
    assert metrics["epochs_run"] == metrics["epochs"] == folds[0]["epochs_run"] == folds[1]["epochs_run"]
    assert metrics["lr"] == folds[0]["lr"] and metrics["arch"] == folds[0]["arch"] and metrics["keep"] == "last"
    assert read_info(out / "refit" / "data").settings["refit"] == {"clips": len(trained)}


def test_the_refit_writes_no_validation_scores_and_says_where_its_expected_performance_is(refit_cv):
    _, out, output = refit_cv
    refit = out / "refit"
    metrics = json.loads((refit / "metrics.json").read_text())
    assert metrics["valid"] is None and "accuracy" not in metrics and "track" not in metrics
    assert "out-of-fold" in metrics["refit"] and metrics["best_epoch"] is None
    assert not (refit / VALID_PREDICTIONS).exists() and not (refit / "confusion_matrix.png").exists()
    history = json.loads((refit / "history.json").read_text())["history"]
    assert all(set(row) == {"epoch", "train_loss", "seconds"} for row in history)
    assert Predictor.load(refit, device="cpu").meta.metrics == {}  # no training-fit score in the model file
    page = (refit / "report.html").read_text()
    assert "No validation scores" in page and "Validation scores" not in page
    document = json.loads((out / CV_FILE).read_text())
    assert document["refit"]["model"] == "refit/model.safetensors" and document["refit"]["epochs"] == 1
    assert "out-of-fold" in document["refit"]["validation_scores"]
    assert set(document["models"]) == {"folds/<k>/model.safetensors", "ensemble.safetensors", "refit/model.safetensors"}
    for line in ("fold models:", "fold ensemble:", "refit model:", "refit model on the held-out test split:"):
        assert line in output
    cv_page = (out / "report.html").read_text()
    assert "Model files" in cv_page and "refit model (every clip)" in cv_page and "No validation scores" in cv_page


def test_the_refit_model_is_scored_once_on_the_test_split(refit_cv):
    data, out, _ = refit_cv
    refit = out / "refit"
    test = json.loads((refit / "metrics.json").read_text())["test"]
    rows = _csv(refit / "test_predictions.csv")
    assert len(rows) == len([row for row in read_manifest(data) if row.split == "test"])
    assert test["accuracy"] == pytest.approx(np.mean([row["true"] == row["predicted"] for row in rows]))
    document = json.loads((out / CV_FILE).read_text())
    assert document["refit"]["test"]["accuracy"] == test["accuracy"]
    # the test predictions are the refit model's own, fed as `predict` feeds windows
    predictor = Predictor.load(refit / "model.safetensors", device="cpu")
    from PIL import Image

    image = np.asarray(Image.open(refit / "data" / rows[0]["image"]).convert("RGB"))
    probs = np.asarray(predictor.outputs(predictor.logits([image])))[0]
    assert np.allclose(probs, [float(rows[0][f"prob_{c}"]) for c in predictor.meta.classes], atol=1e-4)


def test_predict_evaluate_and_export_take_the_refit_model(refit_cv, tiny_audio, tmp_path):
    _, out, _ = refit_cv
    refit = out / "refit"
    assert model_writer(refit) == "train"
    result = runner.invoke(app, ["predict", str(refit), str(tiny_audio), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert len(_csv(tmp_path / "p.csv")) == 16
    result = runner.invoke(app, ["export", str(refit), "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 0, result.output
    exported = Predictor.load(tmp_path / "m.safetensors", device="cpu").meta.metrics
    assert "out-of-fold" in exported["refit"] and exported["valid"] is None and "accuracy" not in exported
    result = runner.invoke(app, ["evaluate", str(refit), str(tiny_audio), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output


def test_a_rerun_skips_a_finished_refit_and_a_changed_setting_trains_it_again(refit_cv, monkeypatch):
    data, out, _ = refit_cv
    document = json.loads((out / CV_FILE).read_text())
    config = TrainConfig(**document["config"])

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(cv_module, "train", no_training)
    monkeypatch.setattr(refit_module, "train", no_training)
    result = run_cv(data, config, out, folds=2, refit=True, show=False, report=False)
    assert result.skipped == ["0", "1"] and result.refit is not None and not result.refit.ran
    before = json.loads((out / "refit" / "refit.json").read_text())["fingerprint"]
    trained = []
    monkeypatch.setattr(cv_module, "train", lambda data, settings, run_dir, show: None)
    monkeypatch.setattr(cv_module, "pool_folds", lambda *_args: result)
    monkeypatch.setattr(refit_module, "train", lambda data, settings, run_dir, show: trained.append(settings))
    monkeypatch.setattr(refit_module, "read_metrics", lambda _run_dir: {})
    changed = run_cv(data, dataclasses.replace(config, lr=2e-3), out, folds=2, refit=True, show=False, report=False)
    assert changed.refit.ran and [s.config.lr for s in trained] == [2e-3]
    assert json.loads((out / "refit" / "refit.json").read_text())["fingerprint"] != before  # the new one recorded


def test_refit_with_settings_cv_refuses_is_one_line(refit_cv, tmp_path):
    data, _, _ = refit_cv
    command = [sys.executable, "-m", "mer_fastai", "cv", str(data), *CLI_OPTIONS, "--refit", "--patience", "2"]
    process = subprocess.run([*command, "--out", str(tmp_path / "cv")], capture_output=True, text=True, timeout=120)
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1 and "--patience 2: cv scores each fold" in lines[0]
    assert not (tmp_path / "cv" / "refit").exists()


def test_train_still_refuses_a_data_set_without_validation_images(refit_cv, tmp_path):
    """Only a refit's own data set (dataset.json says so) trains without validation clips."""
    from mer_fastai.training.items import training_items

    data, out, _ = refit_cv
    assert training_items(open_dataset(out / "refit" / "data"), None)[1] == []
    info = json.loads((out / "refit" / "data" / "dataset.json").read_text())
    info["settings"].pop("refit")
    (out / "refit" / "data" / "dataset.json").write_text(json.dumps(info))
    try:
        with pytest.raises(MerError, match="the valid/ folder holds no image"):
            training_items(open_dataset(out / "refit" / "data"), None)
    finally:
        info["settings"]["refit"] = {"clips": 12}
        (out / "refit" / "data" / "dataset.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def study_set(tmp_path_factory):
    from mer_fastai.data.synth import make_study_style_set

    return make_study_style_set(tmp_path_factory.mktemp("study"), clips_per_class=3, seconds=2.0, seed=3)


@pytest.mark.parametrize(
    ("name", "task", "test_pct"),
    [("va", {"targets": ["valence", "energy"]}, 0.2), ("moods", {"task": "multilabel"}, 0.0)],
)
def test_a_regression_and_a_multilabel_refit(study_set, tmp_path, name, task, test_pct):
    from mer_fastai.data.synth import STUDY_CLASSES

    audio, ratings = study_set
    task = {"targets": list(STUDY_CLASSES), **task} if task.get("task") else task
    data = _prepare(audio, tmp_path / "data", None, ratings, valid_pct=0.25, test_pct=test_pct, **task)
    result = _cv(data, tmp_path / "cv")
    assert result.exit_code == 0, result.output
    refit = tmp_path / "cv" / "refit"
    metrics = json.loads((refit / "metrics.json").read_text())
    assert metrics["valid"] is None and metrics["task"] == read_info(data).task != "classification"
    assert not (refit / VALID_PREDICTIONS).exists() and (metrics["test"] is not None) == bool(test_pct)
    assert "No validation scores" in (refit / "report.html").read_text()
    predictor = Predictor.load(refit, device="cpu")
    assert predictor.task == metrics["task"] and predictor.meta.metrics == {}
    document = json.loads((tmp_path / "cv" / CV_FILE).read_text())
    assert document["refit"]["clips"] == len({r.clip_id for r in read_manifest(data) if r.split != "test"})


@pytest.mark.parametrize(
    "changes",
    [{"mode": "freeze", "lr": None}, {"cache": False}],
    ids=["freeze-cached-features-lr-auto", "per-image-loaders"],
)
def test_a_refit_through_the_cached_features_and_the_per_image_loaders(refit_cv, tmp_path, changes):
    """The refit's empty validation loader passes through the head-on-features path, `--lr auto` and --no-cache."""
    from tests.inference.test_predict import TINY_CONFIG

    data, _, _ = refit_cv
    config = dataclasses.replace(TINY_CONFIG, **changes)
    result = run_cv(data, config, tmp_path / "cv", folds=2, refit=True, show=False, report=False)
    metrics = json.loads((result.refit.run_dir / "metrics.json").read_text())
    assert metrics["valid"] is None and metrics["test"]["accuracy"] is not None and metrics["epochs_run"] == 1
    assert metrics["cached_features"] is (changes.get("mode") == "freeze")
    folds = json.loads((tmp_path / "cv" / "folds" / "0" / "metrics.json").read_text())
    assert folds["cached_features"] is metrics["cached_features"]
