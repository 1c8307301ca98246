"""`baseline --save-model`: the hand-crafted linear model as a model file that predicts what the baseline scored,
and fused with a network in one ensemble file."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.data.handcrafted import READS
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.data.synth import MOOD_CUES, make_demo_audio, make_mood_set, make_study_style_set
from mer_fastai.errors import MerError
from mer_fastai.evaluation.ensemble import ensemble_models
from mer_fastai.evaluation.evaluator import evaluate
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.header import model_header, model_writer
from mer_fastai.models.modelfile import read_model
from mer_fastai.preparation.prepare import prepare_dataset
from tests.evaluation.test_baseline import SPEC
from tests.inference.test_predict import tiny_run  # noqa: F401  (session fixture shared by the modules)
from tests.test_cli import run_main

runner = CliRunner()


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _outputs(row: dict, names: tuple[str, ...], prefix: str) -> np.ndarray:
    return np.array([float(row[f"{prefix}{name}"]) for name in names])


def _save(data: Path, out: Path, *extra: str) -> Path:
    """`baseline DATA --classifier linear --save-model` through the CLI; the model file."""
    args = ["baseline", str(data), "--out", str(out), "--classifier", "linear", "--save-model", "--seed", "0"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return out / "linear" / "model.safetensors"


def _data(tmp_path: Path, task: str) -> Path:
    """A tiny prepared data set of `task` (1 s windows, 32 mel bands) with a validation split."""
    data = tmp_path / "data"
    if task == "classification":
        audio = make_demo_audio(tmp_path / "audio", clips_per_class=3, seconds=3.0, seed=3)
        prepare_dataset(audio, data, "emotions", spec=SPEC, valid_pct=0.4, workers=1, progress=False)
    elif task.startswith("regression"):  # "regression 1": one target (scikit-learn predicts it as (windows,))
        audio, ratings = make_study_style_set(tmp_path / "study", clips_per_class=3, seconds=2.0, seed=3)
        targets = ["valence"] if task.endswith("1") else ["valence", "energy"]
        prepare_dataset(audio, data, None, ratings, spec=SPEC, valid_pct=0.34, targets=targets,
                        workers=1, progress=False)  # fmt: skip
    else:
        audio, votes = make_mood_set(tmp_path / "moods", clips=16, seconds=2.0, seed=3)
        prepare_dataset(audio, data, None, votes, spec=SPEC, valid_pct=0.34, targets=list(MOOD_CUES),
                        task="multilabel", id_column="clip", workers=1, progress=False)  # fmt: skip
    return data


@pytest.mark.parametrize("case", ["classification", "regression", "regression 1", "multilabel"])
def test_the_model_file_predicts_what_the_baseline_scored(case, tmp_path):
    """Loaded by `Predictor` from the audio, the file gives the baseline's own validation windows and tracks."""
    data, task = _data(tmp_path, case), case.split()[0]
    model = _save(data, tmp_path / "out")
    predictor = Predictor.load(model, device="cpu")
    meta = predictor.meta
    assert (meta.arch, meta.window_features, meta.task.name, meta.input_size) == ("linear", READS, task, 83)
    assert meta.spec.segment_seconds == 1.0 and model_writer(model) == "baseline"
    metrics = json.loads((model.parent / "metrics.json").read_text())
    assert metrics["model_checksum"] == model_header(model)["checksum"]  # the row's scores are of this file
    prefix = "pred_" if task == "regression" else "prob_"
    windows = _rows(tmp_path / "out" / "linear" / "valid_predictions.csv")
    tracks = _rows(tmp_path / "out" / "linear" / "track_predictions.csv")
    assert tracks and len(windows) > len(tracks)
    compared = 0
    for track in tracks:
        predicted = predictor.predict(track["source"])
        field = "values" if task == "regression" else "probabilities"
        got = np.array([getattr(predicted, field)[name] for name in meta.classes])
        np.testing.assert_allclose(got, _outputs(track, meta.classes, prefix), atol=1e-5)
        by_start = {float(w["segment_start"]): w for w in windows if w["clip_id"] == track["clip_id"]}
        assert len(predicted.windows) == len(by_start) == int(track["windows"])
        for window in predicted.windows:
            got = np.array([getattr(window, field)[name] for name in meta.classes])
            np.testing.assert_allclose(got, _outputs(by_start[window.start], meta.classes, prefix), atol=1e-5)
            compared += 1
    assert compared == len(windows)


def test_folds_write_one_model_file_per_fold(tmp_path):
    data = _data(tmp_path, "classification")
    _save(data, tmp_path / "cv", "--folds", "2")
    files = sorted((tmp_path / "cv" / "folds").glob("*/linear/model.safetensors"))
    assert len(files) == 2 and len({model_header(f)["checksum"] for f in files}) == 2  # each fold its own fit
    for file in files:  # each fold's file reproduces that fold's held-out tracks
        predictor = Predictor.load(file, device="cpu")
        track = _rows(file.parent / "track_predictions.csv")[0]
        got = predictor.predict(track["source"]).probabilities
        np.testing.assert_allclose([got[c] for c in predictor.classes], _outputs(track, predictor.classes, "prob_"),
                                   atol=1e-5)  # fmt: skip
    folds = ensemble_models(files, tmp_path / "folds.safetensors")  # one input: an ordinary ensemble
    assert not folds.meta.is_mixed and folds.meta.window_features == READS
    ensemble, members = Predictor.load(folds.model_file, device="cpu"), [Predictor.load(f, device="cpu") for f in files]
    clip = _rows(files[0].parent / "track_predictions.csv")[0]["source"]
    each = [np.array([m.predict(clip).probabilities[c] for c in m.classes]) for m in members]
    got = ensemble.predict(clip).probabilities
    np.testing.assert_allclose([got[c] for c in ensemble.classes], np.mean(each, axis=0), atol=2e-6)


def test_fused_with_a_network_the_ensemble_is_the_mean_of_its_two_members(tiny_run, tiny_data, tiny_audio, tmp_path):  # noqa: F811
    """A 1-epoch squeezenet and the hand-crafted linear model of the same data set, as ONE model file."""
    handcrafted = _save(tiny_data, tmp_path / "baseline")
    result = runner.invoke(
        app, ["ensemble", str(tiny_run), str(handcrafted), "--out", str(tmp_path / "fused.safetensors")]
    )
    assert result.exit_code == 0, result.output
    fused = Predictor.load(tmp_path / "fused.safetensors", device="cpu")
    assert fused.meta.is_mixed and fused.meta.arch_summary == "1 × squeezenet1_0 + 1 × linear"
    assert fused.meta.member(1).window_features == READS and fused.meta.member(0).window_features is None
    members = [Predictor.load(path, device="cpu") for path in (tiny_run, handcrafted)]
    files = sorted(tiny_audio.rglob("*.wav"))[:4]
    for track in fused.predict_many(files):
        alone = [member.predict(track.file) for member in members]
        each = np.array([[single.probabilities[c] for c in fused.classes] for single in alone])
        got = np.array([track.probabilities[c] for c in fused.classes])
        np.testing.assert_allclose(got, each.mean(axis=0), atol=2e-6)
        assert track.window_counts == (len(alone[0].windows), len(alone[1].windows))
    scored = evaluate(tmp_path / "fused.safetensors", tiny_audio, tmp_path / "eval", device="cpu", progress=False)
    assert scored.metrics["n_tracks"] == 16 and "track_accuracy" in scored.metrics


def _hashes(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in f.rglob("*") if p.is_file()}


def test_what_cannot_be_a_model_file_is_refused_in_one_line(tiny_data, tiny_audio, tmp_path, capsys, monkeypatch):
    model = _save(tiny_data, tmp_path / "baseline")
    yours = tmp_path / "baseline" / "yours"
    (yours / "linear").mkdir(parents=True)
    (yours / "linear" / "model.safetensors").write_bytes(b"a file of yours")
    before = _hashes(tiny_data, tmp_path / "baseline")
    clip = str(next(tiny_audio.rglob("*.wav")))
    refusals = [
        (["baseline", str(tiny_data), "--out", str(tmp_path / "svm"), "--classifier", "svm", "--save-model"],
         "--save-model: only the linear models convert exactly to a model file, not --classifier svm; pass "
         "--classifier linear"),
        (["baseline", str(tiny_data), "--out", str(tmp_path / "all"), "--save-model", "--folds", "2"],
         "not --classifier svm"),
        (["baseline", str(tiny_data), "--out", str(tmp_path / "mel"), "--classifier", "linear", "--features",
          "melodic", "--save-model"], "a model file reads the handcrafted and musicnn-msd / musicnn-mtt features, not "
         "--features melodic"),
        (["baseline", str(tiny_data), "--out", str(yours), "--classifier", "linear", "--save-model"],
         "is not a model file (a file of yours?); baseline replaces only a model file it wrote itself"),
        (["export", str(model), "--out", str(tmp_path / "e.safetensors"), "--onnx"],
         "--onnx: a hand-crafted model reads feature vectors computed from the audio"),
        (["embed", str(model), clip, "--out", str(tmp_path / "emb.npz")], "embed: a hand-crafted model has no learned"),
        (["predict", str(model), clip, "--precision", "bf16"], "a hand-crafted model runs at fp32 only"),
    ]  # fmt: skip
    assert_refused(refusals, capsys, monkeypatch)
    assert _hashes(tiny_data, tmp_path / "baseline") == before  # inputs unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline"]  # nothing else written
    with pytest.raises(MerError, match=re.escape("which this version does not compute")):
        from mer_fastai.models.modelmeta import ModelMeta

        ModelMeta.from_dict({**read_model(model)[1].to_dict(), "window_features": "handcrafted@mir-83/1"}, model)
    record = read_model(model)[1].to_dict()
    for changed in ({"window_features": None}, {"arch": "squeezenet1_0"}):  # the arch and the input go together
        with pytest.raises(MerError, match="a model reading window features has arch 'linear', no other one"):
            ModelMeta.from_dict({**record, **changed}, model)


@pytest.mark.parametrize(
    ("task", "names", "y"),
    [
        ("classification", 4, [1, 3] * 20),  # two of four classes seen: the others get probability 0
        ("classification", 4, [0, 1, 2, 1] * 10),  # multinomial over the three seen
        ("regression", 2, [[i % 5, (i * 7) % 3] for i in range(40)]),
        ("regression", 1, [[i % 5] for i in range(40)]),
        ("multilabel", 3, [[i % 2, 0, 1] for i in range(40)]),  # a mood never, one always present
        ("multilabel", 1, [[i % 3 == 0] for i in range(40)]),
    ],
)
def test_every_linear_estimator_converts_exactly(task, names, y):
    """The standardise + linear network gives what the fitted pipeline gives, through the task's activation."""
    import torch

    from mer_fastai.evaluation.baseline.models import ESTIMATORS
    from mer_fastai.evaluation.baseline.savemodel import LINEAR_MAPS
    from mer_fastai.models.featurenet import FeatureLinear
    from mer_fastai.tasks.registry import get_task

    rules = get_task(task)
    x = np.random.default_rng(1).normal(5.0, 3.0, size=(40, 6)).astype(np.float32)
    kind = ESTIMATORS[rules.facts.baseline_estimator]
    model = kind.make("linear", 0, len(x), 1).fit(x, np.array(y, dtype=np.int64 if task == "classification" else float))
    weights, bias = LINEAR_MAPS[rules.facts.baseline_estimator](model[-1], names, x.shape[1])
    network = FeatureLinear(x.shape[1], names)
    state = {"mean": model[0].mean_, "scale": model[0].scale_, "linear.weight": weights, "linear.bias": bias}
    network.load_state_dict({k: torch.tensor(np.asarray(v), dtype=torch.float32) for k, v in state.items()})
    with torch.inference_mode():
        got = rules.outputs(network(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(got, kind.outputs(model, x, names).reshape(got.shape), atol=1e-5)  # one target: (N,)


def test_on_real_4q_clips_the_file_predicts_what_the_baseline_scored(four_q_sample, tmp_path):
    """16 real mp3 clips (4 per quadrant), 10 s windows: the file's validation tracks are the baseline's."""
    spec = SpecConfig(segment_seconds=10.0, n_mels=32)
    prepare_dataset(four_q_sample, tmp_path / "data", "emotions", spec=spec, valid_pct=0.25, workers=1,
                    progress=False)  # fmt: skip
    model = _save(tmp_path / "data", tmp_path / "out")
    predictor = Predictor.load(model, device="cpu")
    tracks = _rows(model.parent / "track_predictions.csv")
    predicted = predictor.predict_many([track["source"] for track in tracks])
    assert len(predicted.tracks) == len(tracks) >= 4
    for track, got in zip(tracks, predicted.tracks, strict=True):
        assert int(track["windows"]) == len(got.windows) == 3  # a 30 s clip: three 10 s windows
        probs = [got.probabilities[c] for c in predictor.classes]
        np.testing.assert_allclose(probs, _outputs(track, predictor.classes, "prob_"), atol=1e-5)


def assert_refused(refusals: list[tuple[list[str], str]], capsys, monkeypatch) -> None:
    """Each command line exits 2 with one line holding its message and no traceback."""
    for args, message in refusals:
        if "--onnx" in args and importlib.util.find_spec("onnx") is None:
            continue  # without onnx, --onnx is refused for that first
        code, error = run_main(args, capsys, monkeypatch)
        assert code == 2 and message in error and "Traceback" not in error, (args, error)
        assert len([line for line in error.splitlines() if line.strip()]) == 1, error


def test_a_rerun_without_save_model_leaves_no_stale_model_file(tiny_data, tmp_path):
    """A row rerun without --save-model (here: another seed) drops the model file of the earlier fit, which its new
    scores do not describe; a model file the user put in another row's folder stays."""
    model = _save(tiny_data, tmp_path / "b")
    theirs = tmp_path / "b" / "knn" / "model.safetensors"
    theirs.parent.mkdir()
    theirs.write_bytes(model.read_bytes().replace(b'"written_by":"baseline"', b'"written_by":"evaluate"'))
    kept = theirs.read_bytes()
    args = ["baseline", str(tiny_data), "--out", str(tmp_path / "b"), "--classifier", "linear", "--classifier", "knn"]
    result = runner.invoke(app, [*args, "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert not model.exists() and "model_checksum" not in json.loads((model.parent / "metrics.json").read_text())
    assert model_writer(theirs) == "evaluate" and theirs.read_bytes() == kept


def test_fused_with_a_track_head_the_ensemble_predicts_the_mean_of_its_two_members(tiny_data, tiny_audio, tmp_path):
    """A track head alone on its input (the hand-crafted model reads the other): its group is the track head itself,
    body then head over the clip's windows (it crashed looking for the body of a group)."""
    from mer_fastai.api.training import train
    from mer_fastai.training.config import TrainConfig

    config = TrainConfig(arch="squeezenet1_0", weights="none", epochs=1, bs=4, size=48, head="track", lr=1e-2)
    track = train(tiny_data, config, tmp_path / "track", show=False).run_dir
    handcrafted = _save(tiny_data, tmp_path / "baseline")
    result = runner.invoke(app, ["ensemble", str(track), str(handcrafted), "--out", str(tmp_path / "f.safetensors")])
    assert result.exit_code == 0, result.output
    fused = Predictor.load(tmp_path / "f.safetensors", device="cpu")
    assert fused.meta.is_mixed and fused.meta.member(0).is_track
    members = [Predictor.load(path, device="cpu") for path in (track, handcrafted)]
    for clip in sorted(tiny_audio.rglob("*.wav"))[:3]:
        each = np.array([[m.predict(clip).probabilities[c] for c in fused.classes] for m in members])
        got = fused.predict(clip).probabilities
        np.testing.assert_allclose([got[c] for c in fused.classes], each.mean(axis=0), atol=2e-6)
    scored = evaluate(tmp_path / "f.safetensors", tiny_audio, tmp_path / "eval", device="cpu", progress=False)
    assert scored.metrics["n_tracks"] == 16
