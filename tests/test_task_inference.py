"""Regression and multilabel models through predict, evaluate, export, ensembles and embed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer_fastai.api.evaluation import evaluate
from mer_fastai.api.training import train
from mer_fastai.cli.main import app
from mer_fastai.data.synth import STUDY_CLASSES, make_study_style_set
from mer_fastai.errors import MerError
from mer_fastai.evaluation.ensemble import ensemble_models
from mer_fastai.inference.embed_map import write_map
from mer_fastai.inference.export import export_model
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.modelfile import load_model, read_model, save_model_file
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.scoring.scores import multilabel_metrics, regression_metrics
from mer_fastai.training.fit import TrainConfig
from tests.conftest import TINY_SPEC

TARGETS = ["valence", "energy"]
MOODS = list(STUDY_CLASSES)


@pytest.fixture(scope="module")
def study_set(tmp_path_factory):
    """5 emotions × 3 synthetic 2 s clips and a study-style ratings file (1-9 scales)."""
    return make_study_style_set(tmp_path_factory.mktemp("study"), clips_per_class=3, seconds=2.0, seed=3)


@pytest.fixture(scope="module")
def shares_file(tmp_path_factory):
    """Vote shares per mood: 0.6 for the clip's own emotion, 0.4 for a neighbour in two clips of three."""
    path = tmp_path_factory.mktemp("labels") / "shares.csv"
    rows = []
    for n in range(1, 16):
        own = MOODS[(n - 1) // 3]
        other = MOODS[(MOODS.index(own) + 1) % len(MOODS)]
        rows.append([f"{n:03d}.wav", *(0.6 if m == own else 0.4 if m == other and n % 3 else 0.0 for m in MOODS)])
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["clip", *MOODS], *rows])
    return path


def _run(data, tmp_path_factory, name: str):
    config = TrainConfig(arch="alexnet", epochs=1, bs=8, size=64, weights="none", lr=1e-3)
    return train(data, config, tmp_path_factory.mktemp(name) / "run", show=False).run_dir


@pytest.fixture(scope="module")
def va_run(study_set, tmp_path_factory):
    data = tmp_path_factory.mktemp("va")
    prepare_dataset(study_set[0], data, None, study_set[1], spec=TINY_SPEC, valid_pct=0.25, workers=1,
                    progress=False, targets=TARGETS)  # fmt: skip
    return _run(data, tmp_path_factory, "va_run")


@pytest.fixture(scope="module")
def mood_run(study_set, shares_file, tmp_path_factory):
    data = tmp_path_factory.mktemp("moods")
    prepare_dataset(study_set[0], data, None, shares_file, spec=TINY_SPEC, id_column="clip", task="multilabel",
                    targets=MOODS, workers=1, progress=False)  # fmt: skip
    return _run(data, tmp_path_factory, "mood_run")


def _window_matrix(track, key: str, names: list[str]) -> np.ndarray:
    return np.array([[getattr(w, key)[n] for n in names] for w in track.windows])


def test_regression_predict_gives_values_within_scale_and_tracks_are_window_means(va_run, study_set):
    predictor = Predictor.load(va_run, device="cpu")
    assert predictor.task == "regression" and predictor.classes == TARGETS
    predictions = predictor.predict_many([study_set[0]])
    assert len(predictions) == 15
    for track in predictions:
        windows = _window_matrix(track, "values", TARGETS)
        assert ((windows > 1.0) & (windows < 9.0)).all()
        assert [track.values[n] for n in TARGETS] == pytest.approx(windows.mean(axis=0), abs=1e-5)
        assert track.probabilities == {} and track.moods == ()
    with pytest.raises(MerError, match="--aggregate vote: a regression model's tracks are the mean"):
        predictor.predict_many([study_set[0]], aggregate="vote")


def test_multilabel_predict_gives_moods_at_threshold_with_sigmoid_probabilities(mood_run, study_set):
    predictor = Predictor.load(mood_run, device="cpu")
    assert predictor.task == "multilabel" and predictor.threshold == 0.5
    track = predictor.predict(next(study_set[0].glob("*.wav")))
    windows = _window_matrix(track, "probabilities", MOODS)
    assert ((windows > 0) & (windows < 1)).all()  # sigmoid per mood, not a softmax over moods
    assert [track.probabilities[m] for m in MOODS] == pytest.approx(windows.mean(axis=0), abs=1e-5)
    assert track.moods == tuple(m for m in MOODS if track.probabilities[m] >= 0.5)
    for window in track.windows:
        assert window.moods == tuple(m for m in MOODS if window.probabilities[m] >= 0.5)
        assert window.label == ";".join(window.moods)


def _predictions_csv(path) -> dict[str, dict]:
    with path.open() as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def test_regression_evaluate_scores_tracks_like_training(va_run, study_set, tmp_path):
    result = evaluate(va_run, study_set[0], tmp_path / "eval", labels=study_set[1], device="cpu", progress=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["n_tracks"] == 15 and metrics["aggregate"] == "mean"
    assert {"ccc", "pearson_r", "r2", "rmse", "mae", "per_target", "window_scores"} <= set(metrics)
    rows = _predictions_csv(tmp_path / "eval" / "predictions.csv")
    assert list(next(iter(rows.values())))[4:] == ["true_valence", "pred_valence", "true_energy", "pred_energy"]
    for track in result.predictions:  # the track's value is the mean of its windows, as predict says
        assert float(rows[track.file]["pred_energy"]) == pytest.approx(track.values["energy"], abs=1e-5)
    predicted = np.array([[float(r[f"pred_{n}"]) for n in TARGETS] for r in rows.values()])
    true = np.array([[float(r[f"true_{n}"]) for n in TARGETS] for r in rows.values()])
    expected = regression_metrics(predicted, true, TARGETS)
    for score in ("ccc", "rmse", "mae"):
        assert metrics[score] == pytest.approx(expected[score], abs=1e-5)
    assert metrics["per_target"]["valence"]["rmse"] == pytest.approx(expected["per_target"]["valence"]["rmse"], 1e-5)
    for name in ("scatter_valence.png", "scatter_energy.png", "circumplex.png"):
        assert (tmp_path / "eval" / name).read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "eval" / "confusion_matrix.png").exists()


def test_regression_evaluate_needs_a_labels_file_and_one_column_per_target(va_run, study_set, tmp_path):
    with pytest.raises(
        MerError, match="--labels is missing: a regression model reads its targets from the columns of a labels file"
    ):
        evaluate(va_run, study_set[0], tmp_path / "a", device="cpu", progress=False)
    with pytest.raises(MerError, match="the model predicts 2 \\(valence, energy\\)"):
        evaluate(va_run, study_set[0], tmp_path / "b", labels=study_set[1], targets=["valence"], progress=False)
    with pytest.raises(
        MerError, match="--feature names the one label to classify; a regression model learns all its targets at once"
    ):
        evaluate(va_run, study_set[0], tmp_path / "c", labels=study_set[1], feature="valence", progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")  # nothing left behind


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ([], "--labels is missing: a regression model reads its targets"),
        (["--labels", "LABELS", "--feature", "valence"], "--feature names the one label to classify; a regression"),
    ],
)
def test_evaluate_cli_words_the_label_rules_for_a_model_of_values(va_run, study_set, tmp_path, capsys, monkeypatch,
                                                                   options, phrase):  # fmt: skip
    """The command line's entry point to the label rules `test_bad_inputs` cannot reach (its run is a classifier):
    exit 2, one `error:` line, nothing written."""
    from tests.test_cli import run_main

    args = [a.replace("LABELS", str(study_set[1])) for a in options]
    code, err = run_main(["evaluate", str(va_run), str(study_set[0]), *args, "--out", str(tmp_path / "e")], capsys,
                         monkeypatch)  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and phrase in errors[0] and "Traceback" not in err, err
    assert not (tmp_path / "e").exists()


def test_multilabel_evaluate_scores_moods_like_training(mood_run, study_set, shares_file, tmp_path):
    evaluate(mood_run, study_set[0], tmp_path / "eval", labels=shares_file, id_column="clip", device="cpu",
             progress=False)  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and metrics["threshold"] == 0.5 and set(metrics["per_label"]) == set(MOODS)
    rows = list(_predictions_csv(tmp_path / "eval" / "predictions.csv").values())
    probs = np.array([[float(r[f"prob_{m}"]) for m in MOODS] for r in rows])
    true = np.array([[float(m in r["true"].split(";")) for m in MOODS] for r in rows])
    expected = multilabel_metrics(probs, true, MOODS, 0.5)
    for score in ("micro_f1", "macro_f1", "map"):
        assert metrics[score] == pytest.approx(expected[score], abs=1e-5)
    for row, p in zip(rows, probs):
        assert row["predicted"] == ";".join(m for m, v in zip(MOODS, p) if v >= 0.5)
    assert (tmp_path / "eval" / "per_label.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("which", ["va_run", "mood_run"])
def test_export_round_trip_and_onnx_outputs_the_raw_head(which, request, tmp_path):
    run = request.getfixturevalue(which)
    result = export_model(run, tmp_path / "m.safetensors", onnx=True)
    original, meta = load_model(run)
    exported, exported_meta = load_model(result.model_file)
    assert exported_meta.task == meta.task and exported_meta.scale == meta.scale
    images = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        expected = original(images).numpy()
        np.testing.assert_allclose(exported(images).numpy(), expected, atol=1e-6)
    ort = pytest.importorskip("onnxruntime", reason="checking the ONNX file needs onnxruntime")
    session = ort.InferenceSession(str(result.onnx_file), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["logits"], {"image": images.numpy()})[0], expected, atol=1e-4)
    if meta.task == "regression":
        assert ((expected > 1) & (expected < 9)).all()  # values in their scale, not logits


@pytest.mark.parametrize("which", ["va_run", "mood_run"])
def test_an_ensemble_averages_values_or_mood_probabilities(which, request, study_set, tmp_path):
    run = request.getfixturevalue(which)
    model, meta = load_model(run)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    other = save_model_file(tmp_path / "other.safetensors", model, meta)
    ensemble = ensemble_models([run, other], tmp_path / "ensemble.safetensors")
    assert read_model(ensemble.model_file)[1].task == meta.task
    audio = next(study_set[0].glob("*.wav"))
    key = "values" if meta.task == "regression" else "probabilities"
    tracks = [getattr(Predictor.load(path, device="cpu").predict(audio), key) for path in (run, other)]
    combined = getattr(Predictor.load(ensemble.model_file, device="cpu").predict(audio), key)
    for name in meta.classes:
        assert combined[name] == pytest.approx((tracks[0][name] + tracks[1][name]) / 2, abs=1e-4)


def test_an_ensemble_refuses_members_of_another_task(va_run, mood_run, tmp_path):
    with pytest.raises(MerError, match="does not match .* in its task"):
        ensemble_models([va_run, mood_run], tmp_path / "e.safetensors")


def test_embed_predicts_per_task(va_run, mood_run, study_set, tmp_path):
    audio = sorted(study_set[0].glob("*.wav"))[:3]
    values = Predictor.load(va_run, device="cpu").embed(audio)
    assert all(p.startswith("valence=") and ";energy=" in p for p in values.track_predicted + values.window_predicted)
    moods = Predictor.load(mood_run, device="cpu").embed(audio)
    assert all(set(filter(None, p.split(";"))) <= set(MOODS) for p in moods.track_predicted)
    assert values.track_features[0].shape == moods.track_features[0].shape  # the same layer, whatever the task
    png, html, _ = write_map(values, tmp_path / "values.npz")
    assert png.read_bytes().startswith(b"\x89PNG") and html.is_file()


def test_cli_predict_writes_task_columns(va_run, mood_run, study_set, tmp_path):
    runner = CliRunner()
    audio = str(sorted(study_set[0].glob("*.wav"))[0])
    out = tmp_path / "values.csv"
    result = runner.invoke(app, ["predict", str(va_run), audio, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    header = out.read_text().splitlines()[0]
    assert header == "file,duration,windows,pred_valence,pred_energy"
    out = tmp_path / "moods.csv"
    result = runner.invoke(app, ["predict", str(mood_run), audio, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "file,moods,duration,windows," + ",".join(f"prob_{m}" for m in MOODS)
    result = runner.invoke(app, ["predict", str(mood_run), audio, "--format", "json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout[result.stdout.index("{") :])
    assert document["task"] == "multilabel" and document["threshold"] == 0.5
    track = document["tracks"][0]
    assert set(track) == {"file", "moods", "probabilities", "duration", "windows"}
    assert set(track["windows"][0]) == {"start", "end", "moods", "probabilities"}
    result = runner.invoke(app, ["predict", str(va_run), audio, "--device", "cpu"])
    assert result.exit_code == 0 and "valence" in result.output and "energy" in result.output


def test_cli_evaluate_prints_the_regression_table(va_run, study_set, tmp_path):
    result = CliRunner().invoke(
        app, ["evaluate", str(va_run), str(study_set[0]), "--labels", str(study_set[1]), "--out",
              str(tmp_path / "eval"), "--target", "valence", "--target", "energy", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "CCC" in result.output and "tracks" in result.output


def test_inference_rebuilds_the_training_head_and_threshold():
    """Training and model-file reading build the network with one builder (regression head layer included) and
    decide moods at one threshold, not copies."""
    from mer_fastai.models import modelfile
    from mer_fastai.tasks import multilabel
    from mer_fastai.training import learner

    assert (
        learner.create_model is modelfile.create_model
        and multilabel.MULTILABEL.facts.decision is multilabel.MOOD_DECISION
    )
    head = modelfile.TargetRange([[1.0, 9.0], [-1.0, 1.0]])
    out = head(torch.tensor([[-50.0, 0.0], [50.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0], [9.0, 0.0]]))  # squeezed into each target's scale
    assert list(head.state_dict()) == ["low", "high"]
