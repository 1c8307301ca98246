"""Regression data sets end to end: prepare --target → train → metrics.json, predictions and plots."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from mer_fastai.api.training import find_lr, train
from mer_fastai.cli.main import app
from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.data.synth import make_study_style_set
from mer_fastai.errors import MerError
from mer_fastai.models.modelfile import load_model, read_model
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.scoring.scores import regression_metrics, score_regression
from mer_fastai.tasks.regression import ccc
from mer_fastai.training.fit import TrainConfig
from tests.conftest import TINY_SPEC

TARGETS = ["valence", "energy"]
SCORES = {"ccc", "pearson_r", "r2", "rmse", "mae"}


@pytest.fixture(scope="module")
def study_set(tmp_path_factory):
    """5 emotions × 3 synthetic 2 s clips and a study-style ratings file (1-9 scales)."""
    return make_study_style_set(tmp_path_factory.mktemp("study"), clips_per_class=3, seconds=2.0, seed=3)


@pytest.fixture(scope="module")
def va_data(study_set, tmp_path_factory):
    audio, ratings = study_set
    out = tmp_path_factory.mktemp("va")
    prepare_dataset(audio, out, None, ratings, spec=TINY_SPEC, valid_pct=0.25, workers=1, progress=False,
                    targets=TARGETS)  # fmt: skip
    return out


def tiny(**overrides) -> TrainConfig:
    values = {"arch": "alexnet", "epochs": 1, "bs": 8, "size": 64, "weights": "none", "lr": 1e-3, **overrides}
    return TrainConfig(**values)


def test_prepare_keeps_the_targets_and_their_scale(va_data, study_set):
    info = read_info(va_data)
    assert (info.task, info.targets, info.feature) == ("regression", TARGETS, "valence+energy")
    assert info.scale == {"valence": [1.0, 9.0], "energy": [1.0, 9.0]}  # the study's rating scale
    assert info.classes == ["negative", "neutral", "positive"]  # tertile bins of valence: the folders
    rows = read_manifest(va_data)
    with (study_set[1]).open() as handle:
        ratings = {int(r["number"]): r for r in csv.DictReader(handle, delimiter="\t")}
    for row in rows:
        assert list(row.targets) == TARGETS
        expected = ratings[int(row.clip_id)]
        assert row.values == (float(expected["valence"]), float(expected["energy"]))
        assert row.image.startswith(f"{row.split}/{row.label}/")
    header = (va_data / "manifest.csv").read_text().splitlines()[0]
    assert header.endswith("group,sha256,fingerprint,target_valence,target_energy")
    assert {row.split for row in rows} == {"train", "valid"}


def _ratings_with(path, study_set, line: int, column: str, value: str):
    lines = study_set[1].read_text().splitlines()
    header = lines[0].split("\t")
    cells = lines[line - 1].split("\t")
    cells[header.index(column)] = value
    lines[line - 1] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("value", ["", "NaN", "n/a", "high"])
def test_a_missing_or_non_numeric_target_is_refused_naming_its_row(study_set, tmp_path, value):
    ratings = _ratings_with(tmp_path / "ratings.csv", study_set, 4, "energy", value)
    with pytest.raises(MerError, match=r"row 4 has no usable value in column 'valence, energy'.*--skip-unlabeled"):
        prepare_dataset(study_set[0], tmp_path / "out", None, ratings, targets=TARGETS, progress=False)
    assert not (tmp_path / "out").exists()


def test_skip_unlabeled_leaves_the_clip_out(study_set, tmp_path):
    ratings = _ratings_with(tmp_path / "ratings.csv", study_set, 4, "valence", "nan")
    result = prepare_dataset(study_set[0], tmp_path / "out", None, ratings, spec=TINY_SPEC, targets=["valence"],
                             skip_unlabeled=True, workers=1, progress=False)  # fmt: skip
    assert result.clips == 14 and "003" not in {row.clip_id for row in read_manifest(tmp_path / "out")}
    assert any("no usable value" in item["reason"] for item in result.skipped)


def test_any_csv_with_id_column_records_the_values_range(study_set, tmp_path):
    audio = study_set[0]
    rng = np.random.default_rng(0)
    values = {f"{n:03d}": rng.uniform(-0.5, 0.8) for n in range(1, 16)}
    labels = tmp_path / "arousal.csv"
    labels.write_text("file,arousal\n" + "".join(f"{k}.wav,{v:.4f}\n" for k, v in values.items()))
    prepare_dataset(audio, tmp_path / "out", None, labels, spec=TINY_SPEC, id_column="file", targets=["arousal"],
                    workers=1, progress=False)  # fmt: skip
    info = read_info(tmp_path / "out")
    rounded = [round(v, 4) for v in values.values()]
    assert info.scale == {"arousal": [min(rounded), max(rounded)]} and info.feature == "arousal"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"targets": ["valence"], "cuts": [3.0, 6.0]},
            "--cuts bins ratings into classes; a regression data set keeps its values",
        ),
        ({"targets": ["valence"], "label_column": "valence"}, "--label-column names classes"),
        ({"task": "regression"}, "--target is missing: a regression data set learns the numeric labels column(s)"),
        (
            {"targets": ["valence"], "task": "classification"},
            "a classification data set has classes: drop it, or choose a --task that learns them",
        ),
        ({"targets": ["calm"]}, "no column 'calm'"),
        ({"targets": ["valence", "valence"]}, "names a column twice"),
    ],
)
def test_inconsistent_task_options_are_refused(study_set, tmp_path, kwargs, message):
    with pytest.raises(MerError, match=re.escape(message)):
        prepare_dataset(study_set[0], tmp_path / "out", None, study_set[1], progress=False, **kwargs)


def test_a_constant_target_is_refused(study_set, tmp_path):
    lines = study_set[1].read_text().splitlines()
    header = lines[0].split("\t")
    index = header.index("tension")
    rows = [line.split("\t") for line in lines[1:]]
    fixed = [lines[0], *("\t".join(c if i != index else "5.00" for i, c in enumerate(row)) for row in rows)]
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("\n".join(fixed) + "\n")
    with pytest.raises(MerError, match="column 'tension' holds the one value 5 for every clip"):
        prepare_dataset(study_set[0], tmp_path / "out", None, ratings, targets=["tension"], progress=False)


@pytest.fixture(scope="module")
def va_run(va_data, tmp_path_factory):
    """Freeze mode on cached features, in memory: the default fast path."""
    return train(va_data, tiny(), tmp_path_factory.mktemp("run") / "run", show=False)


def _check_scores(block: dict) -> None:
    assert set(block["per_target"]) == set(TARGETS)
    for scores in block["per_target"].values():
        assert set(scores) == SCORES
        assert scores["rmse"] >= scores["mae"] >= 0


def test_train_writes_regression_metrics_predictions_and_plots(va_run, va_data):
    metrics = json.loads((va_run.run_dir / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["monitor"] == "ccc" and metrics["cached_features"]
    _check_scores(metrics)
    _check_scores(metrics["track"])
    assert metrics["n_windows"] == sum(row.split == "valid" for row in read_manifest(va_data))
    assert metrics["track_ccc"] == metrics["track"]["ccc"] and metrics["test"] is None
    for name in ("scatter_valence.png", "scatter_energy.png", "circumplex.png", "curves.png"):
        assert (va_run.run_dir / name).read_bytes().startswith(b"\x89PNG")
    assert not (va_run.run_dir / "classification_report.txt").exists()


def test_predictions_lie_within_the_scale_and_tracks_are_window_means(va_run):
    with (va_run.run_dir / "valid_predictions.csv").open() as handle:
        windows = list(csv.DictReader(handle))
    with (va_run.run_dir / "track_predictions.csv").open() as handle:
        tracks = {row["clip_id"]: row for row in csv.DictReader(handle)}
    for name in TARGETS:
        predicted = np.array([float(row[f"pred_{name}"]) for row in windows])
        assert ((predicted > 1.0) & (predicted < 9.0)).all()
        for clip, track in tracks.items():
            mean = np.mean([float(r[f"pred_{name}"]) for r in windows if r["clip_id"] == clip])
            assert float(track[f"pred_{name}"]) == pytest.approx(mean, abs=1e-5)
    truth = np.array([[float(r[f"true_{n}"]) for n in TARGETS] for r in windows])
    predicted = np.array([[float(r[f"pred_{n}"]) for n in TARGETS] for r in windows])
    metrics = json.loads((va_run.run_dir / "metrics.json").read_text())
    assert metrics["ccc"] == pytest.approx(regression_metrics(predicted, truth, TARGETS)["ccc"], abs=1e-4)


def test_the_model_file_records_the_task_and_loads_with_its_scale(va_run):
    _, meta = read_model(va_run.run_dir)
    assert meta.task == "regression" and meta.classes == tuple(TARGETS) and meta.scale == ((1, 9), (1, 9))
    model, loaded = load_model(va_run.run_dir)  # predict, evaluate, export serve it (tests/test_task_inference.py)
    with torch.inference_mode():
        values = model(torch.randn(2, 3, 64, 64))
    assert loaded == meta and values.shape == (2, 2) and ((values > 1) & (values < 9)).all()


def test_classification_only_commands_refuse_a_regression_data_set_or_run(va_data, va_run, tmp_path):
    from mer_fastai.gan.train import train_gan

    with pytest.raises(MerError, match="is a regression data set; `mer-fastai gan train`"):
        train_gan(va_data, tmp_path / "gan", steps=1, size=16)
    assert (va_run.run_dir / "report.html").is_file()  # train writes the report for every task
    assert not (tmp_path / "gan").exists()


def test_ccc_loss_on_the_per_image_pipeline_in_whole_mode(va_data, tmp_path):
    result = train(va_data, tiny(loss="ccc", cache=False, mode="whole", num_workers=0), tmp_path / "r", show=False)
    assert not result.metrics["cached_features"] and result.metrics["mode"] == "whole"
    assert json.loads((tmp_path / "r" / "config.json").read_text())["loss"] == "ccc"
    _check_scores(result.metrics)


def test_lr_find_on_a_regression_data_set(va_data, tmp_path):
    found = find_lr(va_data, tiny(), tmp_path / "lr")
    assert found.suggestion > 0 and found.plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"monitor": "accuracy"}, "--monitor accuracy: not a score of a regression data set; choose auto or ccc"),
        ({"balanced": True}, "--balanced weights classes; a regression data set has no classes: drop it"),
        ({"extra_train_dirs": ["gan"]}, "--augment-dir adds class folders; a regression data set has no classes"),
    ],
)
def test_class_only_options_are_refused_for_regression(va_data, tmp_path, overrides, message):
    with pytest.raises(MerError, match=re.escape(message)):
        train(va_data, tiny(**overrides), tmp_path / "r", show=False)
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_a_regression_loss_is_refused_for_classification(tiny_data, tmp_path):
    with pytest.raises(MerError, match=re.escape("--loss ccc: is a regression loss")):
        train(tiny_data, tiny(loss="ccc"), tmp_path / "r", show=False)


def test_prepare_cli_with_targets(study_set, tmp_path):
    audio, ratings = study_set
    out = tmp_path / "cli"
    args = ["prepare", str(audio), "--labels", str(ratings), "--target", "valence", "--target", "tension", "--out",
            str(out), "--segment-seconds", "1", "--n-mels", "32", "--workers", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert read_info(out).targets == ["valence", "tension"] and read_info(out).feature == "valence+tension"
    result = CliRunner().invoke(app, ["prepare", str(audio), "--labels", str(ratings), "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, MerError) and "--feature is missing" in str(result.exception)


# The score formulas against reference computations.


def _reference_ccc(x: np.ndarray, y: np.ndarray) -> float:
    cov = np.cov(x, y, bias=True)[0, 1]
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_regression_scores_match_numpy_and_scipy():
    rng = np.random.default_rng(7)
    true = rng.uniform(1, 9, size=(40, 2))
    predicted = true * 0.6 + rng.normal(0, 1, size=(40, 2)) + 1.0
    metrics = regression_metrics(predicted, true, TARGETS)
    for i, name in enumerate(TARGETS):
        x, y = predicted[:, i], true[:, i]
        scores = metrics["per_target"][name]
        assert scores["ccc"] == pytest.approx(_reference_ccc(x, y))
        assert scores["pearson_r"] == pytest.approx(stats.pearsonr(x, y)[0])
        assert scores["r2"] == pytest.approx(1 - np.sum((x - y) ** 2) / np.sum((y - y.mean()) ** 2))
        assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((x - y) ** 2)))
        assert scores["mae"] == pytest.approx(np.mean(np.abs(x - y)))
    assert metrics["ccc"] == pytest.approx(np.mean([metrics["per_target"][n]["ccc"] for n in TARGETS]))
    torch_ccc = ccc(torch.tensor(predicted), torch.tensor(true))
    assert float(torch_ccc) == pytest.approx(metrics["ccc"], rel=1e-5)


def test_perfect_and_undefined_scores():
    true = np.array([[1.0], [2.0], [3.0]])
    perfect = regression_metrics(true, true, ["x"])["per_target"]["x"]
    assert perfect == pytest.approx({"ccc": 1.0, "pearson_r": 1.0, "r2": 1.0, "rmse": 0.0, "mae": 0.0})
    flat = regression_metrics(np.full((3, 1), 2.0), true, ["x"])["per_target"]["x"]
    assert flat["pearson_r"] is None and flat["ccc"] == 0.0 and flat["r2"] == pytest.approx(0.0)


def test_track_scores_average_each_clips_windows():
    predicted = np.array([[1.0], [3.0], [5.0]])
    true = np.array([[2.0], [2.0], [6.0]])
    metrics, tracks = score_regression(predicted, true, ["a", "a", "b"], ["x"])
    assert tracks.ids == ["a", "b"] and tracks.predicted[:, 0].tolist() == [2.0, 5.0]
    assert metrics["n_tracks"] == 2 and metrics["track"]["per_target"]["x"]["mae"] == pytest.approx(0.5)
    with pytest.raises(MerError, match="clip 'a': its windows have different target values"):
        score_regression(predicted, np.array([[2.0], [3.0], [6.0]]), ["a", "a", "b"], ["x"])


def test_the_soundtracks_sample_trains_on_valence_and_energy(shared_data, tmp_path):
    sample = shared_data / "soundtracks-set1-sample"
    if not (sample / "mean_ratings_set1.csv").is_file():
        pytest.skip(f"{sample} not found (the study's 25-clip sample)")
    data = tmp_path / "data"
    prepare_dataset(sample / "audio", data, None, sample / "mean_ratings_set1.csv", spec=TINY_SPEC.__class__(
        segment_seconds=3.0, n_mels=32, hop_length=512), targets=TARGETS, progress=False)  # fmt: skip
    info = read_info(data)
    assert info.clips == 25 and info.scale == {"valence": [1.0, 9.0], "energy": [1.0, 9.0]}
    result = train(data, tiny(), tmp_path / "run", show=False)
    _check_scores(result.metrics)
    assert (tmp_path / "run" / "circumplex.png").is_file()


def test_a_test_split_is_scored_once_with_its_own_plots(study_set, tmp_path):
    audio, ratings = study_set
    data = tmp_path / "data"
    prepare_dataset(audio, data, None, ratings, spec=TINY_SPEC, valid_pct=0.25, test_pct=0.25, targets=TARGETS,
                    workers=1, progress=False)  # fmt: skip
    result = train(data, tiny(), tmp_path / "run", show=False)
    test = result.metrics["test"]
    _check_scores(test)
    _check_scores(test["track"])
    assert test["n_windows"] == sum(row.split == "test" for row in read_manifest(data))
    for name in (
        "test_predictions.csv",
        "test_track_predictions.csv",
        "test_scatter_valence.png",
        "test_circumplex.png",
    ):
        assert (tmp_path / "run" / name).is_file()


def test_demo_regression_shows_the_scatters_and_circumplex(tmp_path):
    from mer_fastai.experiments.demo import run_demo

    result = run_demo(tmp_path, epochs=1, size=64, clips_per_class=3, task="regression")
    assert result.run.metrics["task"] == "regression" and read_info(tmp_path / "data-regression").targets == TARGETS
    for name in ("scatter_valence.png", "scatter_energy.png", "circumplex.png"):
        assert (result.run.run_dir / name).is_file()
    with pytest.raises(MerError, match="the demo shows classification, regression, multilabel"):
        run_demo(tmp_path, task="moods")


def test_evaluate_notes_truth_outside_the_models_output_range(va_run, study_set, tmp_path):
    """A model trained on a 1-9 scale, scored against valence stretched to -28..45: the scores come with a note (how
    many clips, how far) in the printed output and metrics.json; truth on the model's scale gets none."""
    lines = study_set[1].read_text().splitlines()
    column = lines[0].split("\t").index("valence")
    stretched = [lines[0]]
    for line in lines[1:]:
        cells = line.split("\t")
        cells[column] = f"{(float(cells[column]) - 1) / 8 * 73 - 28:.2f}"
        stretched.append("\t".join(cells))
    ratings = tmp_path / "stretched.csv"
    ratings.write_text("\n".join(stretched) + "\n")
    truth = np.array([float(line.split("\t")[column]) for line in stretched[1:]])
    outside = int(((truth < 1) | (truth > 9)).sum())
    result = CliRunner().invoke(
        app, ["evaluate", str(va_run.run_dir), str(study_set[0]), "--labels", str(ratings), "--out",
              str(tmp_path / "eval"), "--device", "cpu"], env={"COLUMNS": "300"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    found = metrics["out_of_range"]["valence"]
    assert found["clips"] == outside > 0 and found["of"] == len(truth) and found["range"] == [1.0, 9.0]
    assert found["max_beyond"] == pytest.approx(max(1 - truth.min(), truth.max() - 9), abs=1e-6)
    assert "energy" not in metrics["out_of_range"]
    note = next(note for note in metrics["notes"] if note.startswith("valence:"))
    assert f"the truth of {outside} of {len(truth)} clip(s) lies outside the model's output range [1, 9]" in note
    assert note in " ".join(result.output.split())
    plain = CliRunner().invoke(
        app, ["evaluate", str(va_run.run_dir), str(study_set[0]), "--labels", str(study_set[1]), "--out",
              str(tmp_path / "plain"), "--device", "cpu"],
    )  # fmt: skip
    assert plain.exit_code == 0 and json.loads((tmp_path / "plain" / "metrics.json").read_text())["out_of_range"] == {}
