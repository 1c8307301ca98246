"""Cross-validation: grouped stratified folds, one run per fold, pooled out-of-fold scores, resume, ensemble."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mer_fastai.evaluation.cv as cv_module
from mer_fastai.api.training import run_cv
from mer_fastai.cli.main import app
from mer_fastai.data.dataset import read_manifest
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.runs.layout import CV_FILE, OOF_PREDICTIONS, OOF_TRACKS
from mer_fastai.training.config import TrainConfig, TrainSettings
from tests.inference.test_predict import TINY_CONFIG

runner = CliRunner()
CLI_OPTIONS = ["--arch", "squeezenet1_0", "--mode", "whole", "--weights", "none", "--epochs", "1", "--bs", "4"]
CLI_OPTIONS += ["--size", "64", "--lr", "1e-3", "--workers", "0", "--folds", "2"]


@pytest.fixture(scope="module")
def cv_dir(tiny_data, tmp_path_factory) -> Path:
    """`mer-fastai cv` with 2 folds on the tiny data set (16 clips, 4 classes)."""
    out = tmp_path_factory.mktemp("cv") / "cv"
    result = runner.invoke(app, ["cv", str(tiny_data), *CLI_OPTIONS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean ± sd" in result.output
    return out


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_cv_predicts_every_clip_once_out_of_fold(cv_dir, tiny_data):
    rows = read_manifest(tiny_data)
    windows, tracks = _csv(cv_dir / OOF_PREDICTIONS), _csv(cv_dir / OOF_TRACKS)
    assert sorted(r["image"] for r in windows) == sorted(row.image for row in rows)  # named as in DATA_DIR
    assert Counter(r["clip_id"] for r in tracks) == Counter({row.clip_id: 1 for row in rows})
    assert Counter(r["clip_id"] for r in windows) == Counter(row.clip_id for row in rows)
    for fold in ("0", "1"):  # each fold validated exactly the clips it held out, trained on the others
        fold_rows = read_manifest(cv_dir / "folds" / fold / "data")
        held = {r["clip_id"] for r in tracks if r["fold"] == fold}
        assert held == {row.clip_id for row in fold_rows if row.split == "valid"}
        assert not held & {row.clip_id for row in fold_rows if row.split == "train"}
        assert (cv_dir / "folds" / fold / "metrics.json").is_file()
    assert list(windows[0])[-2:] == ["repeat", "fold"] and list(windows[0])[:2] == ["image", "clip_id"]


def test_cv_json_holds_fold_scores_their_spread_and_the_pooled_scores(cv_dir):
    document = json.loads((cv_dir / CV_FILE).read_text())
    assert document["folds"] == 2 and document["repeats"] == 1 and document["config"]["arch"] == "squeezenet1_0"
    tracks = _csv(cv_dir / OOF_TRACKS)
    pooled = np.mean([r["true"] == r["predicted"] for r in tracks])
    assert document["pooled"]["track_accuracy"] == pytest.approx(pooled)
    for name in ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1"):
        summary = document["summary"][name]
        assert len(summary["values"]) == 2 and summary["mean"] == pytest.approx(np.mean(summary["values"]))
        assert summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]
    for fold, run in zip(("0", "1"), document["runs"], strict=True):
        metrics = json.loads((cv_dir / "folds" / fold / "metrics.json").read_text())
        assert run["scores"]["accuracy"] == pytest.approx(metrics["accuracy"])  # the run's own numbers
    matrix = np.array(document["track_confusion_matrix"])
    assert matrix.sum() == 16 and np.trace(matrix) == sum(r["true"] == r["predicted"] for r in tracks)
    assert (cv_dir / "confusion_matrix.png").is_file() and (cv_dir / "track_confusion_matrix.png").is_file()
    assert (cv_dir / "report.html").is_file()


def test_the_fold_ensemble_predicts_like_one_model(cv_dir):
    ensemble = Predictor.load(cv_dir, device="cpu")  # a cv folder resolves to its ensemble.safetensors
    assert ensemble.source == cv_dir / "ensemble.safetensors" and len(ensemble.meta.members) == 2
    members = [Predictor.load(cv_dir / "folds" / fold, device="cpu") for fold in ("0", "1")]
    images = [np.random.default_rng(0).integers(0, 255, (32, 44), dtype=np.uint8) for _ in range(3)]
    expected = sum(torch.softmax(m.logits(images), dim=1) for m in members) / 2
    assert torch.allclose(torch.softmax(ensemble.logits(images), dim=1), expected, atol=1e-5)


def test_a_rerun_skips_finished_folds_and_another_fold_count_is_refused(cv_dir, tiny_data, monkeypatch):
    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(cv_module, "train", no_training)
    result = run_cv(tiny_data, TINY_CONFIG, cv_dir, folds=2, show=False, report=False)
    assert result.skipped == ["0", "1"] and result.ran == []
    with pytest.raises(MerError, match="holds the folds of another cross-validation"):
        run_cv(tiny_data, TINY_CONFIG, cv_dir, folds=3, show=False)


def test_folds_keep_their_last_epoch_and_cannot_stop_early(cv_dir, tiny_data, monkeypatch):
    """A fold's validation clips are its out-of-fold score: neither the kept epoch nor an early stop is chosen on
    them, whatever --keep says."""
    assert json.loads((cv_dir / CV_FILE).read_text())["config"]["keep"] == "last"
    for fold in ("0", "1"):
        metrics = json.loads((cv_dir / "folds" / fold / "metrics.json").read_text())
        assert metrics["keep"] == "last" and metrics["kept_epoch"] == metrics["epochs_run"] - 1
    kept = []

    # every fold trains with the settings checked once: a `TrainSettings`, its `config` keeping the last epoch
    def train(data, settings, run_dir, show):
        assert isinstance(settings, TrainSettings)
        kept.append(settings.config.keep)

    monkeypatch.setattr(cv_module, "train", train)
    monkeypatch.setattr(cv_module, "pool_folds", lambda *_args: (_ for _ in ()).throw(MerError("stop")))
    with pytest.raises(MerError, match="stop"):
        run_cv(tiny_data, dataclasses.replace(TINY_CONFIG, keep="best", epochs=3), cv_dir, folds=2, show=False)
    assert kept == ["last", "last"]
    with pytest.raises(MerError, match="--patience 2: cv scores each fold on its validation clips"):
        run_cv(tiny_data, dataclasses.replace(TINY_CONFIG, patience=2), cv_dir, folds=2, show=False)


def test_a_changed_setting_retrains_the_folds(cv_dir, tiny_data, monkeypatch):
    class Stop(Exception):
        pass

    def stop(*_args):
        raise Stop

    trained = []
    monkeypatch.setattr(cv_module, "train", lambda data, config, run_dir, show: trained.append(run_dir))
    monkeypatch.setattr(cv_module, "pool_folds", stop)
    with pytest.raises(Stop):
        run_cv(tiny_data, dataclasses.replace(TINY_CONFIG, epochs=2), cv_dir, folds=2, show=False)
    assert [p.name for p in trained] == ["0", "1"]


@pytest.fixture(scope="module")
def study_set(tmp_path_factory):
    """5 emotions × 3 synthetic 2 s clips and a study-style ratings file (valence, energy, one rating per emotion)."""
    from mer_fastai.data.synth import make_study_style_set

    return make_study_style_set(tmp_path_factory.mktemp("study"), clips_per_class=3, seconds=2.0, seed=3)


def _task_cv(study_set, tmp_path_factory, name: str, **task) -> Path:
    """A data set of `study_set` prepared for `task`, cross-validated with 2 folds by `mer-fastai cv`."""
    from mer_fastai.preparation.prepare import prepare_dataset
    from tests.conftest import TINY_SPEC

    audio, ratings = study_set
    data = tmp_path_factory.mktemp(name) / "data"
    prepare_dataset(audio, data, None, ratings, spec=TINY_SPEC, valid_pct=0.25, workers=1, progress=False, **task)
    out = data.parent / "cv"
    result = runner.invoke(app, ["cv", str(data), *CLI_OPTIONS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def regression_cv(study_set, tmp_path_factory) -> Path:
    return _task_cv(study_set, tmp_path_factory, "va", targets=["valence", "energy"])


@pytest.fixture(scope="module")
def multilabel_cv(study_set, tmp_path_factory) -> Path:
    from mer_fastai.data.synth import STUDY_CLASSES

    return _task_cv(study_set, tmp_path_factory, "moods", task="multilabel", targets=list(STUDY_CLASSES))


def _check_out_of_fold(cv_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    """Every clip and window of the data set predicted exactly once, by the fold that held it out; (cv.json,
    window rows, track rows)."""
    document = json.loads((cv_dir / CV_FILE).read_text())
    rows = read_manifest(document["data_dir"])
    windows, tracks = _csv(cv_dir / OOF_PREDICTIONS), _csv(cv_dir / OOF_TRACKS)
    assert sorted(r["image"] for r in windows) == sorted(row.image for row in rows)
    assert Counter(r["clip_id"] for r in tracks) == Counter({row.clip_id: 1 for row in rows})
    for fold in ("0", "1"):
        held = {row.clip_id for row in read_manifest(cv_dir / "folds" / fold / "data") if row.split == "valid"}
        assert {r["clip_id"] for r in tracks if r["fold"] == fold} == held
    return document, windows, tracks


def _values(rows: list[dict], prefix: str, names: list[str]) -> np.ndarray:
    return np.array([[float(row[prefix + name]) for name in names] for row in rows])


def _regression_scores(rows: list[dict], targets: list[str]) -> dict:
    from mer_fastai.scoring.scores import score_regression

    clips = [row["clip_id"] for row in rows]
    return score_regression(_values(rows, "pred_", targets), _values(rows, "true_", targets), clips, targets)[0]


def test_cv_of_a_regression_data_set_scores_the_out_of_fold_values(regression_cv):
    document, windows, tracks = _check_out_of_fold(regression_cv)
    targets = ["valence", "energy"]
    assert document["task"] == "regression" and document["targets"] == targets
    assert {"true_valence", "pred_valence", "true_energy", "pred_energy"} <= set(tracks[0])
    for run in document["runs"]:  # each fold's scores: score_regression of its out-of-fold windows
        expected = _regression_scores([r for r in windows if r["fold"] == run["name"]], targets)
        for name in ("ccc", "pearson_r", "r2", "rmse", "mae"):
            assert run["scores"][name] == pytest.approx(expected[name], abs=1e-9), name
            assert run["scores"][f"track_{name}"] == pytest.approx(expected["track"][name], abs=1e-9), name
            assert run["scores"][f"{name}_energy"] == pytest.approx(expected["per_target"]["energy"][name], abs=1e-9)
        metrics = json.loads((regression_cv / "folds" / run["name"] / "metrics.json").read_text())
        assert run["scores"]["ccc"] == pytest.approx(metrics["ccc"], abs=1e-4)  # the fold's own numbers
    pooled = _regression_scores(windows, targets)
    assert document["pooled"]["ccc"] == pytest.approx(pooled["ccc"]) and "confusion_matrix" not in document
    assert document["pooled"]["track_rmse"] == pytest.approx(pooled["track"]["rmse"])
    summary = document["summary"]["rmse"]
    assert summary["values"] == [run["scores"]["rmse"] for run in document["runs"]]
    assert summary["mean"] == pytest.approx(np.mean(summary["values"])) and summary["ci95"][0] <= summary["mean"]
    for name in ("scatter_valence.png", "scatter_energy.png", "circumplex.png"):
        assert (regression_cv / name).read_bytes().startswith(b"\x89PNG")
    assert not (regression_cv / "confusion_matrix.png").exists()
    page = (regression_cv / "report.html").read_text()
    assert "Cross-validation: 2 folds (regression)" in page and "out of fold: predicted against true valence" in page


def test_cv_of_a_multilabel_data_set_scores_the_out_of_fold_moods(multilabel_cv):
    from mer_fastai.scoring.scores import score_multilabel
    from mer_fastai.tasks.multilabel import MOOD_DECISION

    document, windows, tracks = _check_out_of_fold(multilabel_cv)
    moods = document["targets"]
    assert document["task"] == "multilabel" and {"true", "predicted", *(f"prob_{m}" for m in moods)} <= set(tracks[0])
    for run in document["runs"]:
        rows = [r for r in windows if r["fold"] == run["name"]]
        truth = np.array([[float(m in r["true"].split(";")) for m in moods] for r in rows])
        clips = [r["clip_id"] for r in rows]
        expected = score_multilabel(_values(rows, "prob_", moods), truth, clips, moods, MOOD_DECISION)[0]
        for name in ("micro_f1", "macro_f1", "map"):
            assert run["scores"][name] == pytest.approx(expected[name]), name
            assert run["scores"][f"track_{name}"] == pytest.approx(expected["track"][name]), name
        metrics = json.loads((multilabel_cv / "folds" / run["name"] / "metrics.json").read_text())
        assert run["scores"]["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-4)
    assert set(document["summary"]) == {f"{p}{s}" for p in ("", "track_") for s in ("micro_f1", "macro_f1", "map")}
    assert document["pooled_metrics"]["per_label"].keys() == set(moods)
    assert (multilabel_cv / "per_label.png").read_bytes().startswith(b"\x89PNG")
    assert "Worst tracks" in (multilabel_cv / "report.html").read_text()


@pytest.mark.parametrize("fixture", ["regression_cv", "multilabel_cv"])
def test_a_task_fold_ensemble_gives_the_mean_output_and_a_rerun_skips_the_folds(fixture, request, monkeypatch):
    cv_dir = request.getfixturevalue(fixture)
    ensemble = Predictor.load(cv_dir, device="cpu")
    members = [Predictor.load(cv_dir / "folds" / fold, device="cpu") for fold in ("0", "1")]
    assert ensemble.task == members[0].task != "classification" and len(ensemble.meta.members) == 2
    images = [np.random.default_rng(1).integers(0, 255, (32, 44), dtype=np.uint8) for _ in range(3)]
    expected = sum(m.outputs(m.logits(images)) for m in members) / 2
    assert np.allclose(ensemble.outputs(ensemble.logits(images)), expected, atol=1e-5)

    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(cv_module, "train", no_training)
    document = json.loads((cv_dir / CV_FILE).read_text())
    config = TrainConfig(**document["config"])  # the settings the CLI trained the folds with
    result = run_cv(document["data_dir"], config, cv_dir, folds=2, show=False, report=False)
    assert result.skipped == ["0", "1"] and result.ran == [] and result.task == document["task"]
    assert result.summary == document["summary"]  # the same scores again, from the same predictions
