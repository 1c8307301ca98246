"""`baseline`: hand-crafted features + classic classifiers on the data set's own windows and split."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_fastai.choices import CLASSIFIERS
from mer_fastai.cli.main import app
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.data.synth import make_demo_audio
from mer_fastai.errors import MerError
from mer_fastai.evaluation.baseline import features as feature_module
from mer_fastai.evaluation.baseline import models
from mer_fastai.evaluation.baseline.classic import baseline_columns, run_baseline
from mer_fastai.evaluation.baseline.features import extract_features, feature_names
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.runs.layout import FEATURES_FILE
from mer_fastai.tasks.opened import open_dataset
from mer_fastai.tasks.registry import get_task

CSV_COLUMNS = baseline_columns(get_task("classification"))  # a classification data set's baseline.csv
SPEC = SpecConfig(segment_seconds=1.0, n_mels=32)
WINDOW_IDS = ["image", "clip_id", "source", "segment_start"]  # a training run's prediction files begin so
TRACK_IDS = ["clip_id", "source", "windows"]


def manifest(data: Path) -> list[dict]:
    with (data / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """4 demo classes × 5 clips of 3 s → 1 s windows; 2 clips per class validate."""
    root = tmp_path_factory.mktemp("baseline")
    audio = make_demo_audio(root / "audio", clips_per_class=5, seconds=3.0, seed=3)
    prepare_dataset(audio, root / "data", "emotions", spec=SPEC, valid_pct=0.4, workers=1, progress=False)
    return root / "data"


@pytest.fixture(scope="module")
def tested_data(tmp_path_factory) -> Path:
    """4 demo classes × 5 clips of 3 s → 1 s windows; a quarter of the clips validate, a quarter test."""
    root = tmp_path_factory.mktemp("tested")
    audio = make_demo_audio(root / "audio", clips_per_class=5, seconds=3.0, seed=4)
    data = root / "data"
    prepare_dataset(audio, data, "emotions", spec=SPEC, valid_pct=0.25, test_pct=0.25, workers=1, progress=False)
    return data


def test_demo_classes_are_separated_and_results_written(demo_data, tmp_path):
    rows = run_baseline(demo_data, tmp_path / "out", seed=0, workers=1, progress=False)
    assert [row["arch"] for row in rows] == list(CLASSIFIERS)
    for row in rows:
        assert row["accuracy"] >= 0.6, row  # chance is 0.25; the demo classes differ in every cue
    columns, saved = read_csv(tmp_path / "out" / "baseline.csv")
    assert columns == CSV_COLUMNS
    assert {row["experiment"] for row in saved} == {"baseline"} and {row["mode"] for row in saved} == {"features"}
    assert {row["dataset"] for row in saved} == {"data"} and {row["augmentation"] for row in saved} == {"none"}
    metrics = json.loads((tmp_path / "out" / "svm" / "metrics.json").read_text())
    assert metrics["arch"] == "svm" and metrics["mode"] == "features" and metrics["feature"] == "emotions"
    assert metrics["classes"] == ["angry", "happy", "sad", "tender"]
    assert set(metrics["per_class"]) == set(metrics["classes"]) and metrics["seconds"] >= 0
    valid = [row for row in manifest(demo_data) if row["split"] == "valid"]
    assert metrics["n_valid"] == len(valid) == sum(s["support"] for s in metrics["per_class"].values())
    assert not (demo_data / FEATURES_FILE).exists()  # the data set is only read
    with np.load(tmp_path / "out" / FEATURES_FILE) as cache:
        assert cache["features"].shape == (len(manifest(demo_data)), len(feature_names()))
        assert np.isfinite(cache["features"]).all()


def test_rerun_reuses_the_feature_cache_and_merges_the_csv(demo_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_baseline(demo_data, out, ["knn", "svm"], workers=1, progress=False)

    def no_decoding(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(feature_module, "_file_features", no_decoding)
    first = {row["arch"]: row for row in read_csv(out / "baseline.csv")[1]}
    again = run_baseline(demo_data, out, ["svm"], workers=1, progress=False)
    merged = {row["arch"]: row for row in read_csv(out / "baseline.csv")[1]}
    assert set(merged) == {"knn", "svm"} and merged["knn"] == first["knn"]
    assert float(merged["svm"]["accuracy"]) == again[0]["accuracy"] == float(first["svm"]["accuracy"])


def test_undecodable_file_is_reported_and_skipped(tmp_path):
    audio = make_demo_audio(tmp_path / "audio", clips_per_class=3, seconds=2.0, seed=5)
    data = tmp_path / "data"
    prepare_dataset(audio, data, "emotions", spec=SPEC, valid_pct=0.34, workers=1, progress=False)
    rows = manifest(data)
    broken = next(row["source"] for row in rows if row["split"] == "train")
    Path(broken).write_bytes(b"not audio at all")
    run_baseline(data, tmp_path / "out", ["knn"], workers=2, progress=False)
    metrics = json.loads((tmp_path / "out" / "knn" / "metrics.json").read_text())
    assert [item["file"] for item in metrics["skipped"]] == [broken]
    assert "cannot decode" in metrics["skipped"][0]["reason"]
    lost = sum(row["source"] == broken for row in rows)
    assert metrics["n_train"] + metrics["n_valid"] == len(rows) - lost


def test_bad_requests_are_clear_errors(demo_data, tmp_path):
    with pytest.raises(MerError, match="unknown --classifier 'svc'"):
        run_baseline(demo_data, tmp_path, ["svc"], progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MerError, match="prepare"):
        run_baseline(tmp_path / "empty", tmp_path / "out", progress=False)


def test_cli_prints_the_table(demo_data, tmp_path):
    result = CliRunner().invoke(
        app, ["baseline", str(demo_data), "--out", str(tmp_path / "out"), "--classifier", "extra_trees"]
    )
    assert result.exit_code == 0, result.output
    assert "extra_trees" in result.output and (tmp_path / "out" / "extra_trees" / "metrics.json").is_file()


@pytest.mark.integration
def test_baseline_on_real_4q_clips(four_q_sample, tmp_path):
    """16 real clips (4 per quadrant) of the 4Q data set, 10 s windows, through prepare and baseline."""
    data = tmp_path / "data"
    spec = SpecConfig(segment_seconds=10.0, n_mels=32)
    prepare_dataset(four_q_sample, data, "emotions", spec=spec, valid_pct=0.25, workers=2, progress=False)
    rows = run_baseline(data, tmp_path / "out", seed=0, workers=2, progress=False)
    assert [row["arch"] for row in rows] == list(CLASSIFIERS)
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0
    metrics = json.loads((tmp_path / "out" / "random_forest" / "metrics.json").read_text())
    assert metrics["classes"] == ["Q1", "Q2", "Q3", "Q4"] and metrics["skipped"] == []
    assert metrics["n_train"] + metrics["n_valid"] == len(manifest(data))


def test_tracks_and_the_test_split_are_scored_like_a_training_run(tested_data, tmp_path):
    data = tested_data
    [row] = run_baseline(data, tmp_path / "out", ["knn"], seed=0, workers=1, progress=False)
    metrics = json.loads((tmp_path / "out" / "knn" / "metrics.json").read_text())
    classes = metrics["classes"]
    features, _ = feature_module.extract_features(data, 1, progress=False, cache=tmp_path / "out" / FEATURES_FILE)
    windows = {split: [r for r in manifest(data) if r["split"] == split] for split in ("train", "valid", "test")}

    def x_y(split: str) -> tuple[np.ndarray, np.ndarray]:
        rows = windows[split]
        return np.stack([features[r["image"]] for r in rows]), np.array([classes.index(r["label"]) for r in rows])

    model = models.make_classifier("knn", 0, len(windows["train"]), 1).fit(*x_y("train"))
    for split, block in (("valid", metrics), ("test", metrics["test"])):
        clips: dict[str, tuple[str, list]] = {}
        for window, probs in zip(windows[split], model.predict_proba(x_y(split)[0]), strict=True):
            clips.setdefault(window["clip_id"], (window["label"], []))[1].append(probs)
        right = [label == classes[int(np.argmax(np.mean(probs, axis=0)))] for label, probs in clips.values()]
        assert block["track_accuracy"] == pytest.approx(np.mean(right)), split  # the mean of each clip's windows
        assert block["n_tracks"] == len(clips) and block["n_windows"] == len(windows[split])
        assert block["track"]["accuracy"] == block["track_accuracy"] and block["aggregate"] == "mean"
    assert metrics["valid"]["accuracy"] == metrics["accuracy"] and metrics["n_test"] == len(windows["test"])
    assert row["track_accuracy"] == round(metrics["track_accuracy"], 4)
    assert row["test_track_macro_f1"] == round(metrics["test"]["track_macro_f1"], 4)
    columns, saved = read_csv(tmp_path / "out" / "baseline.csv")
    assert columns == CSV_COLUMNS and "track_accuracy" in columns and saved[0]["test_track_accuracy"] != ""


def test_classifiers_write_a_training_runs_prediction_files(tested_data, demo_data, tmp_path):
    out = tmp_path / "out"
    run_baseline(tested_data, out, ["knn", "svm"], seed=0, workers=1, progress=False)
    windows = {split: [r for r in manifest(tested_data) if r["split"] == split] for split in ("valid", "test")}
    for name in ("knn", "svm"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        heads = [f"prob_{c}" for c in metrics["classes"]]
        for split, block, prefix in (("valid", metrics, ""), ("test", metrics["test"], "test_")):
            window_file = out / name / ("test_predictions.csv" if prefix else "valid_predictions.csv")
            columns, window_rows = read_csv(window_file)
            assert columns == [*WINDOW_IDS, "true", "predicted", *heads]
            assert [r["image"] for r in window_rows] == [r["image"] for r in windows[split]]
            columns, tracks = read_csv(out / name / f"{prefix}track_predictions.csv")
            assert columns == [*TRACK_IDS, "true", "predicted", *heads]
            assert sorted(r["clip_id"] for r in tracks) == sorted({r["clip_id"] for r in windows[split]})
            right = [r["true"] == r["predicted"] for r in tracks]
            assert np.mean(right) == pytest.approx(block["track_accuracy"]), (name, split)
            for rows in (window_rows, tracks):
                sums = [sum(float(r[h]) for h in heads) for r in rows]
                assert sums == pytest.approx([1.0] * len(rows), abs=1e-5), (name, split)
            for track in tracks:  # the track's probabilities: the mean of its windows' (the scores' aggregate)
                own = [[float(r[h]) for h in heads] for r in window_rows if r["clip_id"] == track["clip_id"]]
                assert int(track["windows"]) == len(own)
                assert [float(track[h]) for h in heads] == pytest.approx(np.mean(own, axis=0), abs=1e-5)
    run_baseline(demo_data, out, ["knn"], seed=0, workers=1, progress=False)  # no test split: no stale test files
    assert (out / "knn" / "track_predictions.csv").is_file()
    assert not (out / "knn" / "test_predictions.csv").exists()
    assert not (out / "knn" / "test_track_predictions.csv").exists()


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    return 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def _task_baseline(tmp_path: Path, audio: Path, labels: Path, targets: list[str], **task) -> tuple[str, dict, Callable]:
    """Prepare a regression or multilabel data set with a test split and run `baseline --classifier svm
    --classifier knn` on it: the terminal output, the knn metrics and `x_y(split)`, the split's (features,
    `target_<t>` values) as the manifest and feature cache hold them."""
    data = tmp_path / "data"
    prepare_dataset(audio, data, None, labels, spec=SPEC, valid_pct=0.25, test_pct=0.25, targets=targets,
                    workers=1, progress=False, **task)  # fmt: skip
    result = CliRunner().invoke(app, ["baseline", str(data), "--out", str(tmp_path / "out"), "--classifier", "svm",
                                      "--classifier", "knn", "--seed", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    features, _ = feature_module.extract_features(data, 1, progress=False, cache=tmp_path / "out" / FEATURES_FILE)

    def x_y(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        rows = [r for r in manifest(data) if r["split"] == split]
        truth = [[float(r[f"target_{t}"]) for t in targets] for r in rows]
        return np.stack([features[r["image"]] for r in rows]), np.array(truth), [r["clip_id"] for r in rows]

    return result.output, json.loads((tmp_path / "out" / "knn" / "metrics.json").read_text()), x_y


def test_regression_data_sets_get_regressors_scored_like_a_training_run(tmp_path):
    from mer_fastai.data.synth import make_study_style_set

    audio, ratings = make_study_style_set(tmp_path / "study", clips_per_class=3, seconds=2.0, seed=3)
    targets = ["valence", "energy"]
    output, metrics, x_y = _task_baseline(tmp_path, audio, ratings, targets)
    assert "regressor" in output and "CCC" in output
    assert metrics["task"] == "regression" and metrics["targets"] == targets
    model = models.make_regressor("knn", 0, metrics["n_train"], 1).fit(*x_y("train")[:2])
    for split, block in (("valid", metrics), ("test", metrics["test"])):
        x, truth, clip_ids = x_y(split)
        predicted = model.predict(x)
        for i, target in enumerate(targets):
            rmse = float(np.sqrt(np.mean((predicted[:, i] - truth[:, i]) ** 2)))
            assert block["per_target"][target]["rmse"] == pytest.approx(rmse), (split, target)
        clips: dict[str, list[int]] = {}
        for index, clip in enumerate(clip_ids):
            clips.setdefault(clip, []).append(index)
        track_pred = np.array([predicted[i].mean(axis=0) for i in clips.values()])
        track_true = np.array([truth[i[0]] for i in clips.values()])
        expected = _ccc(track_pred[:, 0], track_true[:, 0])
        assert block["track"]["per_target"]["valence"]["ccc"] == pytest.approx(expected), split  # mean of windows
    columns, saved = read_csv(tmp_path / "out" / "baseline.csv")
    assert columns == baseline_columns(get_task("regression")) and [row["arch"] for row in saved] == ["svm", "knn"]
    assert float(saved[1]["track_rmse"]) == pytest.approx(metrics["track"]["rmse"], abs=1e-4)
    assert saved[1]["test_track_ccc"] != "" and "accuracy" not in columns
    values = [f"{kind}_{t}" for t in targets for kind in ("true", "pred")]
    for prefix, split in (("", "valid"), ("test_", "test")):
        windows = read_csv(tmp_path / "out" / "knn" / ("test_predictions.csv" if prefix else "valid_predictions.csv"))
        assert windows[0] == [*WINDOW_IDS, *values] and len(windows[1]) == len(x_y(split)[1])
        columns, tracks = read_csv(tmp_path / "out" / "knn" / f"{prefix}track_predictions.csv")
        assert columns == [*TRACK_IDS, *values] and sorted(r["clip_id"] for r in tracks) == sorted(set(x_y(split)[2]))
        rmse = np.sqrt(np.mean([(float(r["pred_energy"]) - float(r["true_energy"])) ** 2 for r in tracks]))
        block = metrics if split == "valid" else metrics["test"]
        assert rmse == pytest.approx(block["track"]["per_target"]["energy"]["rmse"], abs=1e-5), split


def test_multilabel_data_sets_get_mood_classifiers_scored_like_a_training_run(tmp_path):
    from mer_fastai.data.synth import MOOD_CUES, make_mood_set
    from mer_fastai.scoring.scores import score_multilabel
    from mer_fastai.tasks.multilabel import MOOD_DECISION

    audio, votes = make_mood_set(tmp_path / "moods", clips=16, seconds=2.0, seed=3)
    moods = list(MOOD_CUES)
    output, metrics, x_y = _task_baseline(tmp_path, audio, votes, moods, task="multilabel", id_column="clip")
    assert "classifier" in output and "mAP" in output
    assert metrics["task"] == "multilabel" and metrics["moods"] == moods and metrics["threshold"] == MOOD_DECISION
    model = models.make_mood_classifier("knn", 0, metrics["n_train"], 1).fit(*x_y("train")[:2])
    for split, block in (("valid", metrics), ("test", metrics["test"])):
        x, truth, clip_ids = x_y(split)
        probs = np.column_stack([p[:, 1] for p in model.predict_proba(x)])  # every mood occurs in training
        expected = score_multilabel(probs, truth, clip_ids, moods, MOOD_DECISION)[0]
        assert {key: block[key] for key in expected} == expected, split  # tracks too: the mean of their windows
    assert metrics["valid"]["macro_f1"] == metrics["macro_f1"] and metrics["n_test"] == len(x_y("test")[1])
    columns, saved = read_csv(tmp_path / "out" / "baseline.csv")
    assert columns == baseline_columns(get_task("multilabel")) and [row["arch"] for row in saved] == ["svm", "knn"]
    assert float(saved[1]["track_map"]) == pytest.approx(metrics["track"]["map"], abs=1e-4)
    assert float(saved[1]["test_track_macro_f1"]) == pytest.approx(metrics["test"]["track_macro_f1"], abs=1e-4)
    assert "accuracy" not in columns


def test_mood_probabilities_of_constant_and_single_moods():
    x = np.random.default_rng(0).normal(size=(12, 3))
    y = np.array([[i % 2, 0, 1] for i in range(12)])  # mood 2 never holds, mood 3 always
    for name in ("svm", "knn"):
        model = models.make_mood_classifier(name, 0, len(y), 1).fit(x, y)
        probs = models.mood_probs(model, x[:4], 3)
        assert probs.shape == (4, 3) and (probs[:, 1] == 0).all() and (probs[:, 2] == 1).all(), name
        single = models.make_mood_classifier(name, 0, len(y), 1).fit(x, y[:, :1])  # one mood: binary
        assert np.array_equal(models.mood_probs(single, x[:4], 1)[:, 0], single.predict_proba(x[:4])[:, 1]), name


def test_cross_validated_baseline_scores_the_folds_cv_trains_on(demo_data, tmp_path, monkeypatch):
    """`baseline --folds K`: the clips dealt into cv's folds (same seed, same folds), each classifier scored on
    every fold, features extracted once for all folds, mean ± sd per classifier as cv reports a setting."""
    from mer_fastai.evaluation.baseline.folds import cross_validate_baseline
    from mer_fastai.evaluation.folds import dataset_folds

    extract_features(demo_data, workers=1, progress=False, cache=tmp_path / "cv" / FEATURES_FILE)  # no fold decodes

    def no_decoding(*args, **kwargs):
        raise AssertionError("a fold extracted features again")

    monkeypatch.setattr(feature_module, "_file_features", no_decoding)
    out = tmp_path / "cv"
    result = cross_validate_baseline(demo_data, out, 2, classifiers=["knn", "svm"], seed=7, workers=1, progress=False)
    rows, plan, _ = dataset_folds(open_dataset(demo_data), 2, 1, seed=7)
    assert len(plan) == 2 and set(result.per_fold) == {"knn", "svm"}
    for fold in plan:  # each fold validated exactly the clips cv's fold holds out
        fold_rows = manifest(out / "folds" / fold.name / "data")
        assert {r["clip_id"] for r in fold_rows if r["split"] == "valid"} == set(fold.valid_clips)
        assert len(fold_rows) == len(rows)
        svm = json.loads((out / "folds" / fold.name / "svm" / "metrics.json").read_text())
        assert svm["n_valid"] == sum(r["split"] == "valid" for r in fold_rows)
    for row in result.rows:
        fold_scores = [r["track_accuracy"] for r in result.per_fold[row["arch"]]]
        assert row["folds"] == 2 and row["track_accuracy"] == pytest.approx(np.mean(fold_scores), abs=1e-4)
        assert row["track_accuracy_sd"] == pytest.approx(np.std(fold_scores, ddof=1), abs=1e-4)
        assert row["dataset"] == "data" and row["test_accuracy"] == ""
    columns, saved = read_csv(out / "baseline.csv")
    assert [r["arch"] for r in saved] == ["knn", "svm"]
    assert {"accuracy_sd", "track_macro_f1_sd", "folds"} <= set(columns)
    assert "folds" not in CSV_COLUMNS and "accuracy_sd" not in CSV_COLUMNS  # the plain baseline's columns untouched


def test_baseline_cli_cross_validates_with_folds(demo_data, tmp_path):
    result = CliRunner().invoke(
        app, ["baseline", str(demo_data), "--folds", "2", "--classifier", "knn", "--workers", "1", "--out",
              str(tmp_path / "b")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mean ± sd over 2 folds" in result.output and " ± " in result.output.split("knn", 1)[1]


def test_the_svm_keeps_libsvms_probabilities_without_a_warning(demo_data, tmp_path):
    """The SVM's probabilities stay libsvm's (`probability=True`, the stronger reference here); scikit-learn's
    deprecation warning for it is not shown to the user."""
    import warnings

    from mer_fastai.evaluation.baseline.models import make_classifier

    assert make_classifier("svm", seed=0, n_train=10)[-1].probability is True
    with warnings.catch_warnings():
        warnings.filterwarnings("error", module="sklearn")
        rows = run_baseline(demo_data, tmp_path / "out", ["svm"], seed=0, workers=1, progress=False)
    assert rows[0]["accuracy"] >= 0.6


@pytest.mark.parametrize("make", [models.make_classifier, models.make_regressor, models.make_mood_classifier])
def test_a_feature_spread_of_float_noise_counts_as_constant(make):
    """A feature whose training spread is floating-point noise (1e-17, as a beat-interval deviation of synthetic
    audio) is divided by 1, not by its noise: a window whose value is 1e-4 stays a small input instead of 1e13; every
    other feature is standardised exactly as scikit-learn's StandardScaler does."""
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)) * [1.0, 0.0098, 5.0]
    x = np.column_stack([x, 1e-17 * rng.normal(size=40)])
    guarded = make("linear", 0, len(x), 1)[0].fit(x)
    plain = StandardScaler().fit(x)
    np.testing.assert_allclose(guarded.scale_[:3], plain.scale_[:3])
    assert guarded.scale_[3] == 1.0 and plain.scale_[3] < 1e-16
    window = np.array([[0.0, 0.0, 0.0, 1e-4]])
    assert np.abs(guarded.transform(window)).max() < 10
    assert np.abs(plain.transform(window)).max() > 1e10
