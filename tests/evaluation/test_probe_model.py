"""`baseline --features musicnn-* --save-model`: a linear probe of musicnn as a model file that predicts, from the
audio, what the baseline scored; ensembled with the hand-crafted file; refused where it cannot go."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.data.handcrafted import READS
from mer_fastai.data.spectrogram import SpecConfig
from mer_fastai.data.synth import make_demo_audio, make_study_style_set
from mer_fastai.evaluation.ensemble import ensemble_models
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.header import model_header
from mer_fastai.models.modelfile import MODEL_FORMAT, read_model_file, write_safetensors
from mer_fastai.models.musicnn.probe import PROBE_VERSION
from mer_fastai.preparation.prepare import prepare_dataset
from tests.conftest import copy_4q_clips
from tests.evaluation.test_handcrafted_model import _outputs, _rows, assert_refused

runner = CliRunner()
# 6.5 s windows of 13 s clips: two windows a clip, each two 3 s musicnn patches (their mean and sd)
SPEC = SpecConfig(segment_seconds=6.5, n_mels=32)


def _data(root: Path, task: str) -> Path:
    """A tiny prepared data set of `task` (a few 13 s clips, 6.5 s windows) with a validation split."""
    data = root / "data"
    if task == "classification":
        audio = make_demo_audio(root / "audio", clips_per_class=2, seconds=13.0, seed=3)
        prepare_dataset(audio, data, "emotions", spec=SPEC, valid_pct=0.4, workers=1, progress=False)
    else:
        audio, ratings = make_study_style_set(root / "study", clips_per_class=2, seconds=13.0, seed=3)
        prepare_dataset(audio, data, None, ratings, spec=SPEC, valid_pct=0.4, targets=["valence", "energy"],
                        workers=1, progress=False)  # fmt: skip
    return data


def _save(data: Path, out: Path, features: str, layer: str = "pooled") -> Path:
    """`baseline DATA --features F --layer L --classifier linear --save-model` through the CLI; the model file."""
    args = ["baseline", str(data), "--out", str(out), "--classifier", "linear", "--save-model", "--seed", "0",
            "--features", features, "--layer", layer]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    label = "+".join(f"{p}.{layer}" if p.startswith("musicnn-") else p for p in features.split("+"))
    model = out / ("linear" if label == "handcrafted" else f"linear-{label}") / "model.safetensors"
    assert str(model) in result.output.replace("\n", "")  # the command says where it wrote the file
    return model


@pytest.fixture(scope="module")
def classification(musicnn_ready, tmp_path_factory) -> Path:
    return _data(tmp_path_factory.mktemp("probe-model"), "classification")


@pytest.fixture(scope="module")
def probe_file(classification) -> Path:
    """musicnn-msd's pooled layer, the linear estimator, as a model file."""
    return _save(classification, classification.parent / "probe", "musicnn-msd")


def _check_predictions(model: Path, field: str, prefix: str, windows_per_track: int = 2) -> None:
    """`Predictor` from the audio gives the row's validation windows and tracks (its CSVs) to 1e-5."""
    predictor = Predictor.load(model, device="cpu")
    names = predictor.meta.classes
    windows = _rows(model.parent / "valid_predictions.csv")
    tracks = _rows(model.parent / "track_predictions.csv")
    assert tracks and len(windows) == windows_per_track * len(tracks)
    compared = 0
    for track, got in zip(tracks, predictor.predict_many([t["source"] for t in tracks]).tracks, strict=True):
        np.testing.assert_allclose([getattr(got, field)[n] for n in names], _outputs(track, names, prefix), atol=1e-5)
        by_start = {float(w["segment_start"]): w for w in windows if w["clip_id"] == track["clip_id"]}
        assert len(got.windows) == len(by_start) == int(track["windows"]) == windows_per_track
        for window in got.windows:
            expected = _outputs(by_start[window.start], names, prefix)
            np.testing.assert_allclose([getattr(window, field)[n] for n in names], expected, atol=1e-5)
            compared += 1
    assert compared == len(windows)


def test_the_probe_file_predicts_what_the_baseline_scored(probe_file):
    meta = Predictor.load(probe_file, device="cpu").meta
    assert (meta.arch, meta.input_size, meta.task.name) == ("linear", 3012, "classification")
    assert meta.window_features == f"musicnn-msd.pooled@{PROBE_VERSION}"
    metrics = json.loads((probe_file.parent / "metrics.json").read_text())
    assert metrics["model_checksum"] == model_header(probe_file)["checksum"]  # the row's scores are of this file
    _check_predictions(probe_file, "probabilities", "prob_")
    files = sorted((probe_file.parents[2] / "audio").rglob("*.wav"))[:3]
    alone, forked = (Predictor.load(probe_file, device="cpu", workers=n).predict_many(files) for n in (1, 2))
    for one, two in zip(alone.tracks, forked.tracks, strict=True):  # --workers: computed here, not in a fork
        assert one.probabilities == two.probabilities


def test_a_regression_probe_and_a_fusion_with_the_handcrafted_set(musicnn_ready, classification, tmp_path):
    """musicnn-mtt's tag layer of a regression data set; musicnn-msd's tags joined with the hand-crafted set (each
    part cut at the same starts from its own decode: 16 kHz and the data set's rate)."""
    regression = _data(tmp_path, "regression")
    model = _save(regression, tmp_path / "mtt", "musicnn-mtt", "tags")
    assert Predictor.load(model, device="cpu").meta.window_features == f"musicnn-mtt.tags@{PROBE_VERSION}"
    _check_predictions(model, "values", "pred_")
    fused = _save(classification, tmp_path / "fused", "musicnn-msd+handcrafted", "tags")
    meta = Predictor.load(fused, device="cpu").meta
    assert meta.window_features == f"musicnn-msd.tags@{PROBE_VERSION}+{READS}" and meta.input_size == 100 + 83
    _check_predictions(fused, "probabilities", "prob_")


def test_folds_write_one_probe_file_per_fold_that_predict_reads(classification, tmp_path):
    args = ["baseline", str(classification), "--out", str(tmp_path / "cv"), "--classifier", "linear", "--save-model",
            "--features", "musicnn-msd", "--layer", "tags", "--folds", "2", "--seed", "0"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "folds/<k>/linear-musicnn-msd.tags/model.safetensors" in result.output.replace("\n", "")
    files = sorted((tmp_path / "cv" / "folds").glob("*/linear-musicnn-msd.tags/model.safetensors"))
    assert len(files) == 2 and len({model_header(f)["checksum"] for f in files}) == 2  # each fold its own fit
    for file in files:  # each fold's file reproduces that fold's held-out tracks
        _check_predictions(file, "probabilities", "prob_")
    track = _rows(files[0].parent / "track_predictions.csv")[0]
    predicted = runner.invoke(app, ["predict", str(files[0]), track["source"]])
    assert predicted.exit_code == 0 and Path(track["source"]).name in predicted.output, predicted.output


def test_ensembled_with_the_handcrafted_file_its_tracks_are_the_members_mean(classification, probe_file, tmp_path):
    handcrafted = _save(classification, tmp_path / "handcrafted", "handcrafted")
    result = ensemble_models([probe_file, handcrafted], tmp_path / "both.safetensors")
    fused = Predictor.load(result.model_file, device="cpu")
    assert fused.meta.is_mixed and fused.meta.arch_summary == "2 × linear"
    members = [Predictor.load(path, device="cpu") for path in (probe_file, handcrafted)]
    files = sorted((classification.parent / "audio").rglob("*.wav"))[:3]
    for track in fused.predict_many(files).tracks:
        alone = [member.predict(track.file) for member in members]
        each = np.array([[single.probabilities[c] for c in fused.classes] for single in alone])
        np.testing.assert_allclose([track.probabilities[c] for c in fused.classes], each.mean(axis=0), atol=2e-6)
        assert track.window_counts == (2, 2) and track.duration == pytest.approx(13.0)


def test_what_a_probe_file_cannot_do_is_refused_in_one_line(classification, probe_file, tmp_path, capsys, monkeypatch):
    clip = str(next((classification.parent / "audio").rglob("*.wav")))
    state, metadata = read_model_file(probe_file)
    unknown = tmp_path / "unknown.safetensors"
    write_safetensors(unknown, state, {**metadata, "window_features": "musicnn-msd.pooled@musicnn-probe/0"},
                      MODEL_FORMAT, "baseline")  # fmt: skip
    refusals = [
        (["export", str(probe_file), "--out", str(tmp_path / "e.safetensors"), "--onnx"],
         "--onnx: a linear-probe model reads feature vectors computed from the audio"),
        (["embed", str(probe_file), clip, "--out", str(tmp_path / "emb.npz")],
         "embed: a linear-probe model has no learned features"),
        (["predict", str(probe_file), clip, "--precision", "bf16"], "a linear-probe model runs at fp32 only"),
        (["predict", str(unknown), clip], f"{unknown}: reads window features 'musicnn-msd.pooled@musicnn-probe/0', "
                                          "which this version does not compute"),
        (["baseline", str(classification), "--out", str(tmp_path / "mel"), "--classifier", "linear", "--features",
          "musicnn-msd+melodic", "--save-model"], "not --features melodic; drop melodic from --features"),
        (["baseline", str(classification), "--out", str(tmp_path / "wide"), "--classifier", "linear", "--features",
          "musicnn-msd+musicnn-mtt", "--layer", "pooled", "--save-model"],
         "gives 6024 numbers per window, over the 4096"),
    ]  # fmt: skip
    assert_refused(refusals, capsys, monkeypatch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unknown.safetensors"]  # nothing else written


def test_on_real_4q_clips_the_probe_file_predicts_what_the_baseline_scored(musicnn_ready, shared_data, tmp_path):
    """8 real mp3 clips (2 per quadrant), 10 s windows, musicnn-msd's pooled layer: the file's validation windows
    and tracks are the baseline's."""
    copy_4q_clips(shared_data, tmp_path / "audio", 2)
    spec = SpecConfig(segment_seconds=10.0, n_mels=32)
    prepare_dataset(tmp_path / "audio", tmp_path / "data", "emotions", spec=spec, valid_pct=0.5, workers=1,
                    progress=False)  # fmt: skip
    model = _save(tmp_path / "data", tmp_path / "out", "musicnn-msd")
    tracks = _rows(model.parent / "track_predictions.csv")
    assert len(tracks) >= 2 and all(int(track["windows"]) == 3 for track in tracks)  # 30 s clips: three windows
    _check_predictions(model, "probabilities", "prob_", windows_per_track=3)
