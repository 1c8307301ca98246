"""Ensembles: several runs as ONE model file that predicts the mean of its members' probabilities."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mer_fastai.api.evaluation import evaluate
from mer_fastai.cli.main import app
from mer_fastai.data.spectrogram import SpecConfig, musicnn_spec
from mer_fastai.data.synth import make_study_style_set
from mer_fastai.errors import MerError
from mer_fastai.evaluation.ensemble import ensemble_models
from mer_fastai.inference.embed import embed_audio
from mer_fastai.inference.export import export_model
from mer_fastai.inference.predict import Predictor
from mer_fastai.inference.writing import render_predictions
from mer_fastai.models.archs import IDENTITY_STATS
from mer_fastai.models.modelfile import EnsembleModel, build_network, load_model, read_model, save_model_file
from mer_fastai.models.modelmeta import ModelMeta
from tests.conftest import TINY_SPEC
from tests.inference.test_predict import TINY_CONFIG, tiny_run, train_run  # noqa: F401  (session fixture shared by the modules)

runner = CliRunner()


@pytest.fixture(scope="module")
def second_run(tiny_data, tmp_path_factory) -> Path:
    """Another tiny run on the same data set, with another seed (so other weights)."""
    return train_run(tiny_data, tmp_path_factory.mktemp("run2"), dataclasses.replace(TINY_CONFIG, seed=7))


@pytest.fixture(scope="module")
def ensemble_file(tiny_run, second_run, tmp_path_factory) -> Path:  # noqa: F811
    return ensemble_models([tiny_run, second_run], tmp_path_factory.mktemp("ens") / "ens.safetensors").model_file


def _images(data_dir: Path, count: int = 5) -> list[np.ndarray]:
    paths = sorted((data_dir / "valid").rglob("*.png"))[:count]
    return [np.asarray(Image.open(path).convert("L")) for path in paths]


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(tiny_run, second_run, ensemble_file, tiny_data):  # noqa: F811
    images = _images(tiny_data)
    members = [Predictor.load(run, device="cpu") for run in (tiny_run, second_run)]
    ensemble = Predictor.load(ensemble_file, device="cpu")
    assert isinstance(ensemble.model, EnsembleModel) and ensemble.meta.is_ensemble
    assert ensemble.classes == members[0].classes
    probs = [torch.softmax(member.logits(images), dim=1) for member in members]
    assert not torch.allclose(probs[0], probs[1], atol=1e-4)  # the members differ, so the mean means something
    expected = (probs[0] + probs[1]) / 2
    got = torch.softmax(ensemble.logits(images), dim=1)
    assert torch.allclose(got, expected, atol=1e-5)
    meta = read_model(ensemble_file)[1]
    assert [m["source"] for m in meta.members] == [
        str(tiny_run / "model.safetensors"),
        str(second_run / "model.safetensors"),
    ]
    assert all(m["checksum"].startswith("sha256:") and "accuracy" in m["metrics"] for m in meta.members)


def test_an_ensemble_evaluates_and_exports_like_any_model(ensemble_file, tiny_audio, tmp_path):
    result = evaluate(ensemble_file, tiny_audio, tmp_path / "eval", device="cpu", progress=False)
    assert result.metrics["n_tracks"] == 16 and (tmp_path / "eval" / "predictions.csv").is_file()
    exported = export_model(ensemble_file, tmp_path / "exported.safetensors", onnx=True)
    assert exported.meta.is_ensemble and len(exported.meta.members) == 2
    model, _ = load_model(exported.model_file)
    original, _ = load_model(ensemble_file)
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), original(x))
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(exported.onnx_file))
    (onnx_out,) = session.run(None, {"image": x.numpy()})
    assert np.allclose(onnx_out, original(x).detach().numpy(), atol=1e-4)


def test_a_flipped_byte_in_an_ensemble_is_refused(ensemble_file, tmp_path):
    data = bytearray(ensemble_file.read_bytes())
    data[len(data) - 100] ^= 0xFF  # in the last member's weights
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(bytes(data))
    for load in (Predictor.load, lambda p: export_model(p, tmp_path / "x.safetensors")):
        with pytest.raises(MerError, match="checksum mismatch"):
            load(damaged)


def test_members_must_share_what_names_their_outputs(tiny_run, tmp_path):  # noqa: F811
    """Task, classes, feature, scales and cuts must match; the input (spectrogram, size) may differ (mixed ensemble)."""
    model, meta = load_model(tiny_run)
    changed = {
        "classes": (dataclasses.replace(meta, classes=tuple(reversed(meta.classes))), "in its classes"),
        "feature": (dataclasses.replace(meta, feature="moods"), "in its feature \\(moods vs emotions\\)"),
        "cuts": (dataclasses.replace(meta, cuts=(3.0, 6.0)), "in its rating cut points"),
    }
    for name, (other, message) in changed.items():
        path = save_model_file(tmp_path / f"{name}.safetensors", model, other)
        with pytest.raises(MerError, match=message) as caught:
            ensemble_models([tiny_run, path], tmp_path / "out.safetensors")
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    with pytest.raises(MerError, match="same model as"):
        ensemble_models([tiny_run, tiny_run / "model.safetensors"], tmp_path / "out.safetensors")
    with pytest.raises(MerError, match="at least two"):
        ensemble_models([tiny_run], tmp_path / "out.safetensors")
    with pytest.raises(MerError, match="must end in .safetensors"):
        ensemble_models([tiny_run, tmp_path / "classes.safetensors"], tmp_path / "out.bin")
    assert not (tmp_path / "out.safetensors").exists()
    other_input = dataclasses.replace(meta, spec=dataclasses.replace(meta.spec, n_mels=16), input_size=96)
    path = save_model_file(tmp_path / "input.safetensors", model, other_input)
    mixed = ensemble_models([tiny_run, path], tmp_path / "mixed.safetensors").meta
    assert mixed.is_mixed and mixed.input_groups == ((0,), (1,))
    assert mixed.members[1]["input_size"] == 96 and mixed.members[1]["spectrogram"]["n_mels"] == 16
    assert mixed.member(1) == dataclasses.replace(other_input, metrics=mixed.member(1).metrics)


def test_members_of_other_architectures_on_the_same_input_share_it(tiny_run, tiny_data, tmp_path):  # noqa: F811
    meta = load_model(tiny_run)[1]
    alexnet = untrained(tmp_path / "alexnet.safetensors", dataclasses.replace(meta, arch="alexnet"), seed=1)
    built = ensemble_models([tiny_run, alexnet], tmp_path / "two.safetensors")
    assert not built.meta.is_mixed and built.meta.members[1]["arch"] == "alexnet"
    assert built.meta.arch_summary == "1 × squeezenet1_0 + 1 × alexnet"
    images = _images(tiny_data)
    probs = [torch.softmax(Predictor.load(m, device="cpu").logits(images), dim=1) for m in (tiny_run, alexnet)]
    got = torch.softmax(Predictor.load(built.model_file, device="cpu").logits(images), dim=1)
    assert torch.allclose(got, (probs[0] + probs[1]) / 2, atol=1e-5)


def test_an_ensemble_given_as_a_member_is_flattened(tiny_run, second_run, ensemble_file, tmp_path):  # noqa: F811
    with pytest.raises(MerError, match="same model as"):
        ensemble_models([ensemble_file, tiny_run], tmp_path / "again.safetensors")
    model, meta = load_model(tiny_run)
    third = save_model_file(
        tmp_path / "third.safetensors", _perturbed(model), dataclasses.replace(meta, metrics={"accuracy": 0.1})
    )
    flat = ensemble_models([ensemble_file, third], tmp_path / "three.safetensors")
    assert len(flat.meta.members) == 3
    loaded, _ = load_model(flat.model_file)
    assert len(loaded.members) == 3


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    return model


def test_cli_ensemble_and_embed_refusal(tiny_run, second_run, tmp_path):  # noqa: F811
    out = tmp_path / "cli.safetensors"
    result = runner.invoke(app, ["ensemble", str(tiny_run), str(second_run), "--out", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "2 × squeezenet1_0" in result.output and read_model(out)[1].is_ensemble
    predictor = Predictor.load(out, device="cpu")
    with pytest.raises(MerError, match="one member's run folder"):
        predictor.features([])


def test_an_ensemble_is_no_starting_weights(ensemble_file, tiny_data, tmp_path):
    config = dataclasses.replace(TINY_CONFIG, weights=str(ensemble_file))
    with pytest.raises(MerError, match="is an ensemble of 2 models; pass one member"):
        train_run(tiny_data, tmp_path / "run", config)
    assert not (tmp_path / "run").exists()


def test_an_ensemble_is_never_written_over_a_member(tiny_run, second_run, tmp_path):  # noqa: F811
    """Its model file, its run folder, its records, or another name for them (links): one line, nothing written."""
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_run, first)
    shutil.copytree(second_run, second)
    os.link(first / "model.safetensors", tmp_path / "hard.safetensors")
    (tmp_path / "soft.safetensors").symlink_to(second / "model.safetensors")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    for out, what in [
        (first, "the run folder of an ensemble member"),
        (first / "model.safetensors", "is an ensemble member"),
        (second, "the run folder of an ensemble member"),
        (tmp_path / "hard.safetensors", f"is an ensemble member ({first / 'model.safetensors'})"),
        (tmp_path / "soft.safetensors", f"is an ensemble member ({second / 'model.safetensors'})"),
    ]:
        with pytest.raises(MerError, match=re.escape(what)):
            ensemble_models([first, second], out)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    assert ensemble_models([first, second], first / "ensemble.safetensors").meta.is_ensemble  # a new file: fine


# ---------------------------------------------------------------- ensembles of different inputs


def untrained(path: Path, meta: ModelMeta, seed: int) -> Path:
    """A model file of `meta`'s network with random weights (musicnn built without its pretrained weights)."""
    torch.manual_seed(seed)
    return save_model_file(path, build_network(meta), meta)


def musicnn_meta(meta: ModelMeta) -> ModelMeta:
    """`meta` (a single model's) as musicnn-msd reading musicnn's 16-bit spectrograms at their own size."""
    stats = tuple(tuple(part) for part in IDENTITY_STATS)
    return dataclasses.replace(meta, arch="musicnn-msd", spec=musicnn_spec(), stats=stats, input_size=187, metrics={})


@pytest.fixture(scope="module")
def mixed_file(tiny_run, second_run, tmp_path_factory) -> Path:  # noqa: F811
    """squeezenet (1 s windows of 32 mel bands) + musicnn-msd (2.992 s patches) + squeezenet: two inputs."""
    folder = tmp_path_factory.mktemp("mixed")
    musicnn = untrained(folder / "musicnn.safetensors", musicnn_meta(load_model(tiny_run)[1]), seed=3)
    return ensemble_models([tiny_run, musicnn, second_run], folder / "mixed.safetensors").model_file


def _members(mixed_file: Path) -> list[Predictor]:
    return [Predictor.load(member["source"], device="cpu") for member in read_model(mixed_file)[1].members]


def test_a_mixed_ensemble_records_each_members_input(mixed_file, second_run):
    meta = read_model(mixed_file)[1]
    assert meta.is_mixed and meta.input_groups == ((0, 2), (1,)) and meta.arch == "squeezenet1_0"
    assert meta.arch_summary == "2 × squeezenet1_0 + 1 × musicnn-msd"
    musicnn = meta.members[1]
    assert (musicnn["arch"], musicnn["input_size"], musicnn["stats"]) == ("musicnn-msd", 187, [[0.0] * 3, [1.0] * 3])
    assert SpecConfig.from_dict(musicnn["spectrogram"]) == musicnn_spec()
    assert not set(meta.members[2]) & {"arch", "spectrogram", "input_size", "resize"}  # as the first member
    assert meta.member(1).spec.compression == "log10_1p" and meta.member(1).resize == "squish"
    assert meta.member(2) == dataclasses.replace(read_model(second_run)[1], metrics=meta.member(2).metrics)
    model, _ = load_model(mixed_file)
    with pytest.raises(MerError, match="reads 2 different spectrograms, not one input"):
        model(torch.zeros(1, 3, 64, 64))


def test_a_mixed_ensemble_predicts_the_mean_of_its_members_tracks(mixed_file, tiny_audio):
    """Each member on its own windows, every member weighted equally (not each input)."""
    ensemble = Predictor.load(mixed_file, device="cpu")
    files = sorted((tiny_audio / "happy").glob("*.wav"))[:3]
    predictions = ensemble.predict_many(files)
    members = _members(mixed_file)
    classes = ensemble.classes
    for track in predictions:
        alone = [member.predict(track.file) for member in members]
        each = np.array([[single.probabilities[name] for name in classes] for single in alone])
        got = np.array([track.probabilities[name] for name in classes])
        np.testing.assert_allclose(got, each.mean(axis=0), atol=2e-6)
        per_input = (each[[0, 2]].mean(axis=0) + each[1]) / 2
        assert np.abs(per_input - got).max() > 1e-4  # so the weighting is tested
        assert track.label == classes[int(np.argmax(got))] and track.windows == []
        assert track.window_counts == (len(alone[0].windows), len(alone[1].windows)) == (2, 1)
        assert len(alone[2].windows) == 2 and track.duration == pytest.approx(2.0)
    document = json.loads(render_predictions(predictions, ensemble, "json"))
    assert document["window"] is None and [i["members"] for i in document["inputs"]] == [[0, 2], [1]]
    assert [(i["window"], i["sample_rate"]) for i in document["inputs"]] == [(1.0, 22050), (2.992, 16000)]
    assert "window rows are omitted" in document["note"]
    assert all("windows" not in t and t["window_counts"] == [2, 1] for t in document["tracks"])
    rows = list(csv.DictReader(io.StringIO(render_predictions(predictions, ensemble, "csv"))))
    assert [row["windows"] for row in rows] == ["2;1"] * 3
    assert float(rows[0]["prob_happy"]) == predictions.tracks[0].probabilities["happy"]
    result = runner.invoke(app, ["predict", str(mixed_file), str(files[0])], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "mixed-input ensemble" in result.output and "2;1" in result.output


def test_a_mixed_ensemble_evaluates_its_tracks_only(mixed_file, tiny_audio, tmp_path):
    result = evaluate(mixed_file, tiny_audio, tmp_path / "eval", device="cpu", progress=False)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_tracks"] == 16 and not {"n_windows", "window_accuracy"} & set(metrics)
    assert len(metrics["inputs"]) == 2 and "window rows are omitted" in metrics["note"]
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    correct = [Path(track.file).parent.name == track.label for track in result.predictions]
    assert metrics["accuracy"] == metrics["track_accuracy"] == pytest.approx(np.mean(correct))
    assert {row["windows"] for row in rows} == {"2;1"} and [int(row["correct"]) for row in rows] == correct
    cli = runner.invoke(
        app, ["evaluate", str(mixed_file), str(tiny_audio), "-o", str(tmp_path / "cli")], env={"COLUMNS": "300"}
    )
    assert cli.exit_code == 0, cli.output
    assert "mean of the members' tracks" in cli.output and "window accuracy" not in cli.output


def test_what_a_mixed_ensemble_cannot_do_is_refused_in_one_line(mixed_file, tiny_data, tiny_audio, tmp_path):
    ensemble = Predictor.load(mixed_file, device="cpu")
    clip = next(tiny_audio.rglob("*.wav"))
    refusals = [
        (lambda: ensemble.predict(clip, window=2.0), "--window: a mixed-input ensemble reads each input's own"),
        (lambda: ensemble.predict_many([clip], hop=0.5), "--hop: a mixed-input ensemble"),
        (lambda: ensemble.predict(clip, aggregate="vote"), "--aggregate vote: a mixed-input ensemble's tracks"),
        (lambda: export_model(mixed_file, tmp_path / "e.safetensors", onnx=True), "--onnx: a mixed-input ensemble"),
        (lambda: embed_audio(ensemble, [clip]), "one feature vector per member"),
        (lambda: train_run(tiny_data, tmp_path / "run", dataclasses.replace(TINY_CONFIG, weights=str(mixed_file))),
         "is an ensemble of 3 models; pass one member"),
    ]  # fmt: skip
    for refused, message in refusals:
        with pytest.raises(MerError, match=re.escape(message)) as caught:
            refused()
        assert "\n" not in str(caught.value)
    assert not any(tmp_path.iterdir())  # nothing written
    exported = export_model(mixed_file, tmp_path / "e.safetensors")  # the checked model file itself: fine
    assert read_model(exported.model_file)[1].members == read_model(mixed_file)[1].members
    musicnn = read_model(mixed_file)[1].members[1]["source"]  # what the refusal advises: each member with --onnx
    member = export_model(musicnn, tmp_path / "musicnn.safetensors", onnx=True)
    onnxruntime = pytest.importorskip("onnxruntime")
    x = torch.rand(2, 3, 96, 187)  # musicnn reads its 16-bit images at their own size
    (onnx_out,) = onnxruntime.InferenceSession(str(member.onnx_file)).run(None, {"image": x.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(onnx_out, load_model(musicnn)[0](x).numpy(), atol=1e-4)


def test_a_mixed_ensemble_given_as_a_member_keeps_each_members_input(mixed_file, tiny_run, tmp_path):  # noqa: F811
    model, meta = load_model(tiny_run)
    third = save_model_file(tmp_path / "third.safetensors", _perturbed(model), meta)
    flat = ensemble_models([third, mixed_file], tmp_path / "four.safetensors").meta
    assert flat.input_groups == ((0, 1, 3), (2,)) and flat.members[2]["arch"] == "musicnn-msd"
    with pytest.raises(MerError, match=r"'input_size' \(pixels\) must be a whole number"):
        broken = [dict(member) for member in flat.members]
        broken[2]["input_size"] = 0
        ModelMeta.from_dict({**flat.to_dict(), "members": broken}, tmp_path / "broken.safetensors")


def test_a_mixed_regression_ensemble_averages_values_and_scores_tracks(tmp_path):
    """melcnn + two musicnn members, the second normalised otherwise (re-normalised from its input's first member)."""
    audio, ratings = make_study_style_set(tmp_path / "study", clips_per_class=1, seconds=4.0, seed=2)
    scale = ((1.0, 9.0), (1.0, 9.0))
    base = ModelMeta("melcnn", ("valence", "energy"), TINY_SPEC, ((0.5,) * 3, (0.25,) * 3), 64, task="regression",
                     scale=scale)  # fmt: skip
    musicnn = dataclasses.replace(musicnn_meta(base), task="regression", scale=scale)
    members = [untrained(tmp_path / "mel.safetensors", base, 1), untrained(tmp_path / "mus.safetensors", musicnn, 2),
               untrained(tmp_path / "mus2.safetensors", dataclasses.replace(musicnn, stats=((0.1,) * 3, (2.0,) * 3)),
                         3)]  # fmt: skip
    mixed = ensemble_models(members, tmp_path / "mixed.safetensors").model_file
    assert read_model(mixed)[1].input_groups == ((0,), (1, 2))
    ensemble = Predictor.load(mixed, device="cpu")
    files = sorted(audio.glob("*.wav"))[:2]
    for track in ensemble.predict_many(files):
        alone = [Predictor.load(member, device="cpu").predict(track.file).values for member in members]
        for name in ("valence", "energy"):
            assert track.values[name] == pytest.approx(sum(values[name] for values in alone) / 3, abs=2e-6)
        assert track.window_counts == (4, 1)
    result = evaluate(mixed, audio, tmp_path / "eval", labels=ratings, device="cpu", progress=False)
    assert result.metrics["task"] == "regression" and result.metrics["n_tracks"] == 5
    assert not {"window_scores", "n_windows"} & set(result.metrics) and "ccc" in result.metrics["per_target"]["valence"]
    cli = runner.invoke(app, ["evaluate", str(mixed), str(audio), "--labels", str(ratings), "-o", str(tmp_path / "c")],
                        env={"COLUMNS": "300"})  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert "mean of the members' tracks" in cli.output and "CCC" in cli.output
