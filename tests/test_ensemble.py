"""Ensembles: several runs as ONE model file that predicts the mean of its members' probabilities."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.ensemble import ensemble_models
from mer_fastai.errors import MerError
from mer_fastai.evaluate import evaluate
from mer_fastai.export import export_model
from mer_fastai.modelfile import EnsembleModel, load_model, read_model, save_model_file
from mer_fastai.predict import Predictor

from .test_predict import TINY_CONFIG, tiny_run, train_run  # noqa: F401  (session fixture shared by the modules)

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


def test_members_must_share_what_feeds_and_names_their_outputs(tiny_run, tmp_path):  # noqa: F811
    model, meta = load_model(tiny_run)
    changed = {
        "classes": (dataclasses.replace(meta, classes=tuple(reversed(meta.classes))), "in its classes"),
        "spec": (dataclasses.replace(meta, spec=dataclasses.replace(meta.spec, n_mels=16)), "n_mels 16 vs 32"),
        "size": (dataclasses.replace(meta, input_size=96), "in its input size \\(96 vs 64\\)"),
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
