"""`train --head track` for every task: a track head on the frozen body's cached features, through train, predict,
evaluate, cv, ensemble, export and embed, and its refusals.

A shape's data set, track-head run, window-head run and 2-fold cv are made once (module-scoped) on tiny generated
audio (5 × 3 clips of 2 s, 1 s windows, 32 mel bands, melcnn at 32 px, frozen, one epoch).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer_fastai.api.training import train
from mer_fastai.cli.main import app
from mer_fastai.data.dataset import read_manifest
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.modelfile import load_model
from mer_fastai.models.modelmeta import ModelMeta
from mer_fastai.models.track_head import TrackModel, pool
from mer_fastai.tasks.registry import get_task
from mer_fastai.training.config import TrainConfig
from tests.test_task_shapes import SHAPES, SPEC, cli, corpus  # noqa: F401  (module fixture: the labelled clips)

TINY = ["--arch", "melcnn", "--weights", "none", "--mode", "freeze", "--epochs", "1", "--bs", "4", "--size", "32",
        "--lr", "1e-2"]  # fmt: skip
TRACK_SHAPES = [shape for shape in SHAPES if shape.name in ("regression-2", "classes-5", "moods-3")]
pytestmark = pytest.mark.slow  # four trainings per shape


@pytest.fixture(scope="module", params=TRACK_SHAPES, ids=[shape.name for shape in TRACK_SHAPES])
def made(request, corpus, tmp_path_factory) -> dict:  # noqa: F811
    """One shape's data set, track-head run, window-head run and 2-fold track-head cv, made through the CLI."""
    shape, (audio, labels) = request.param, corpus
    root = tmp_path_factory.mktemp(f"track-{shape.name}")
    label_args = ["--labels", labels, "--id-column", "id", *shape.labels]
    cli("prepare", audio, *label_args, *shape.prepare, *SPEC, "--valid-pct", "0.34", "--out", root / "data")
    cli("train", root / "data", *TINY, "--head", "track", "--out", root / "run")
    cli("train", root / "data", *TINY, "--out", root / "window")
    cli("cv", root / "data", *TINY, "--head", "track", "--folds", "2", "--out", root / "cv")
    return {"shape": shape, "root": root, "audio": audio, "label_args": label_args}


def _clip_images(data: Path) -> dict[str, list[np.ndarray]]:
    """The validation images of each clip, as `Predictor` reads them."""
    from PIL import Image

    clips: dict[str, list[np.ndarray]] = {}
    for row in read_manifest(data):
        if row.split == "valid":
            with Image.open(row.path(data)) as image:
                clips.setdefault(row.clip_id, []).append(np.asarray(image))
    return clips


def test_train_records_the_track_head_in_the_model_file(made):
    run = made["root"] / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["head"] == "track" and metrics["cached_features"] is True
    model, meta = load_model(run)
    assert isinstance(model, TrackModel) and (meta.head, meta.pooling) == ("track", "mean+std+max")
    assert meta.is_track and meta.reads_tracks and meta.classes == made["shape"].outputs
    assert ModelMeta.from_dict(meta.to_dict(), run) == meta  # the record reads back as written
    window = load_model(made["root"] / "window")[1]
    assert window.head == "window" and "head" not in window.to_dict()  # window files unchanged


def test_validation_scores_are_what_the_predictor_computes_from_the_saved_file(made):
    """The run's validation outputs (its head on the cached features, one row per clip) are what `Predictor`
    computes from each clip's images through the saved network, and its scores are the task's scores of them."""
    run, data, shape = made["root"] / "run", made["root"] / "data", made["shape"]
    predictor = Predictor.load(run, device="cpu")
    clips = _clip_images(data)
    with (run / "valid_predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    prefix = get_task(shape.task).facts.column_prefix
    written = np.array([[float(row[f"{prefix}_{name}"]) for name in shape.outputs] for row in rows])
    expected = np.concatenate([predictor.outputs(predictor.logits(images)) for images in clips.values()])
    np.testing.assert_allclose(written, expected, atol=1e-5)  # the file keeps 6 decimals
    valid = [row for row in read_manifest(data) if row.split == "valid"]
    task, names = get_task(shape.task), list(shape.outputs)
    scores, _ = task.score(expected, task.split_truth(valid, names), [r.clip_id for r in valid], names)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (shape.score, f"track_{shape.score}"):
        assert metrics[key] == pytest.approx(scores[key], abs=1e-6)


def test_predict_gives_each_window_its_tracks_outputs(made, tmp_path):
    run, audio = made["root"] / "run", made["audio"]
    cli("predict", run, audio, "--out", tmp_path / "p.json")
    written = json.loads((tmp_path / "p.json").read_text())
    predictor = Predictor.load(run, device="cpu")
    clips = sorted(audio.glob("*.wav"))
    assert len(written["tracks"]) == len(clips)
    for track in written["tracks"]:
        numbers = track.get("values") or track["probabilities"]
        assert all((w.get("values") or w["probabilities"]) == numbers for w in track["windows"])
        assert predictor.predict(track["file"]).outputs == pytest.approx(numbers, abs=1e-5)
    single = predictor.predict(clips[0])  # the head over all the file's windows at once
    features = predictor.model.window_features(predictor.preprocess(predictor.window_images(clips[0], 1.0, 1.0)[2]))
    with torch.no_grad():
        head = predictor.outputs(predictor.model.head(features[None]))[0]
    assert list(single.outputs.values()) == pytest.approx(list(head), abs=1e-5)


def test_evaluate_scores_the_tracks(made, tmp_path):
    cli("evaluate", made["root"] / "run", made["audio"], *made["label_args"], "--out", tmp_path / "e")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert np.isfinite(metrics[made["shape"].score]) and metrics["n_tracks"] == len(list(made["audio"].glob("*.wav")))


def test_windows_cut_otherwise_than_in_training_are_noted_for_a_track_head(made, tmp_path):
    """evaluate's metrics.json and predict's messages say when a track head pools windows of another hop than it
    learned from; the training cut, and a window head at any hop, give no such note."""
    run, audio, labels = made["root"] / "run", made["audio"], made["label_args"]
    cli("evaluate", run, audio, *labels, "--hop", "0.5", "--out", tmp_path / "other")
    cli("evaluate", run, audio, *labels, "--out", tmp_path / "trained")
    cli("evaluate", made["root"] / "window", audio, *labels, "--hop", "0.5", "--out", tmp_path / "window")
    notes = {
        name: json.loads((tmp_path / name / "metrics.json").read_text())["notes"]
        for name in ("other", "trained", "window")
    }
    assert [n for n in notes["other"] if "track head pooled windows of 1 s every 1 s" in n and "every 0.5 s" in n]
    assert not [n for n in notes["trained"] + notes["window"] if "track head" in n]
    result = CliRunner().invoke(app, ["predict", str(run), str(audio), "--hop", "0.5"])
    assert result.exit_code == 0, result.output
    assert "track head pooled windows" in " ".join(result.output.split())


def test_cv_trains_track_heads_and_scores_them_out_of_fold(made):
    cv = made["root"] / "cv"
    summary = json.loads((cv / "cv.json").read_text())
    assert summary["folds"] == 2 and all(np.isfinite(v) for v in summary["pooled"].values() if isinstance(v, float))
    for fold in sorted(cv.glob("folds/*")):
        assert load_model(fold)[1].is_track
        assert json.loads((fold / "metrics.json").read_text())["head"] == "track"
    ensemble = Predictor.load(cv / summary["ensemble"], device="cpu")
    assert ensemble.meta.reads_tracks and not ensemble.meta.is_track
    clip = sorted(made["audio"].glob("*.wav"))[0]
    members = [Predictor.load(fold, device="cpu").predict(clip).outputs for fold in sorted(cv.glob("folds/*"))]
    mean = {name: np.mean([m[name] for m in members]) for name in made["shape"].outputs}
    assert ensemble.predict(clip).outputs == pytest.approx(mean, abs=1e-5)


def test_an_ensemble_of_a_track_and_a_window_head_combines_their_tracks(made, tmp_path):
    root = made["root"]
    cli("ensemble", root / "run", root / "window", "--out", tmp_path / "mix.safetensors")
    mixed = Predictor.load(tmp_path / "mix.safetensors", device="cpu")
    assert [mixed.meta.member(i).head for i in range(2)] == ["track", "window"]
    for clip in sorted(made["audio"].glob("*.wav"))[:3]:
        track = Predictor.load(root / "run", device="cpu").predict(clip).outputs
        window = Predictor.load(root / "window", device="cpu").predict(clip).outputs
        expected = {name: (track[name] + window[name]) / 2 for name in track}
        assert mixed.predict(clip).outputs == pytest.approx(expected, abs=1e-5)
    batched = mixed.predict_many([made["audio"]])
    assert batched.tracks[0].outputs == pytest.approx(mixed.predict(batched.tracks[0].file).outputs, abs=1e-6)


def test_export_keeps_the_track_head(made, tmp_path):
    run = made["root"] / "run"
    cli("export", run, "--out", tmp_path / "m.safetensors")
    predictor, copy = Predictor.load(run, device="cpu"), Predictor.load(tmp_path / "m.safetensors", device="cpu")
    assert copy.meta.is_track
    clip = sorted(made["audio"].glob("*.wav"))[0]
    assert copy.predict(clip).outputs == predictor.predict(clip).outputs


def test_onnx_of_a_track_head_reads_all_the_windows_of_one_clip(tiny_data, tiny_audio, tmp_path):
    """melcnn at 32 px has no ONNX form (its frequency pooling); squeezenet1_0 at 48 px has."""
    ort = pytest.importorskip("onnxruntime", reason="checking the ONNX file needs onnxruntime")
    config = TrainConfig(arch="squeezenet1_0", weights="none", epochs=1, bs=4, size=48, head="track", lr=1e-2)
    run = train(tiny_data, config, tmp_path / "run", show=False).run_dir
    cli("export", run, "--out", tmp_path / "m.safetensors", "--onnx")
    predictor = Predictor.load(run, device="cpu")
    images = predictor.window_images(sorted(tiny_audio.rglob("*.wav"))[0], 1.0, 1.0)[2]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    (logits,) = session.run(None, {"image": predictor.preprocess(images).numpy()})  # all the windows of one clip
    np.testing.assert_allclose(logits, predictor.logits(images).numpy(), atol=1e-4)  # the clip's, on every row


def test_embed_writes_the_body_s_window_features_and_the_pooled_track_vector(made):
    predictor = Predictor.load(made["root"] / "run", device="cpu")
    clip = sorted(made["audio"].glob("*.wav"))[0]
    embeddings = predictor.embed([clip])
    images = predictor.window_images(clip, 1.0, 1.0)[2]
    with torch.no_grad():
        features = predictor.model.window_features(predictor.preprocess(images))
    np.testing.assert_allclose(np.stack(embeddings.window_features), features.numpy(), atol=1e-5)
    np.testing.assert_allclose(embeddings.track_features[0], pool(features[None])[0].numpy(), atol=1e-5)
    assert embeddings.track_outputs[0] == pytest.approx(list(predictor.predict(clip).outputs.values()), abs=1e-6)
    assert "mean, std and max" in embeddings.info()["layer"]
    with pytest.raises(MerError, match="`embed` writes its body's window features"):
        predictor.features(images)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mode": "whole"}, "--mode"),
        ({"mode": "partial"}, "--mode"),
        ({"feature_cache": False}, "--feature-cache"),
        ({"train_bn": True}, "--train-bn"),
        ({"augment": "specaugment"}, "--augment"),
        ({"mixup": 0.4}, "--mixup"),
        ({"balanced": True}, "--balanced"),
        ({"augment_audio": 1}, "--augment-audio"),
    ],
)
def test_a_track_head_refuses_what_it_cannot_train_with(changes, named):
    config = TrainConfig(arch="melcnn", weights="none", head="track", **changes)
    with pytest.raises(MerError, match=rf"--head track.*{named}") as caught:
        config.check()
    assert "--head window" in str(caught.value)
    TrainConfig(arch="melcnn", weights="none", **changes).check()  # the window head takes them


def test_older_model_files_without_a_head_read_as_window_heads(tmp_path):
    record = {"arch": "melcnn", "classes": ["a", "b"], "spectrogram": {}, "stats": [[0.5] * 3, [0.2] * 3],
              "input_size": 32}  # fmt: skip
    meta = ModelMeta.from_dict(record, tmp_path / "model.safetensors")
    assert meta.head == "window" and meta.pooling is None and not meta.reads_tracks
    with pytest.raises(MerError, match="pooling"):
        ModelMeta.from_dict({**record, "head": "track", "pooling": "attention"}, tmp_path / "model.safetensors")
    with pytest.raises(MerError, match="'head' must be one of window, track"):
        ModelMeta.from_dict({**record, "head": "clip"}, tmp_path / "model.safetensors")


def test_pooling_ignores_padding():
    torch.manual_seed(0)
    features = torch.randn(1, 3, 5)
    padded = torch.cat([features, torch.full((1, 2, 5), 7.0)], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    torch.testing.assert_close(pool(padded, mask), pool(features))
    mean, std, top = pool(features).split(5, dim=1)
    torch.testing.assert_close(mean, features.mean(1))
    torch.testing.assert_close(std, features.std(1, unbiased=False))
    torch.testing.assert_close(top, features.amax(1))
