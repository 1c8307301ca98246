"""`--layer`: the musicnn body ends at the penultimate layer, the mid-end's pooled features, the tag probabilities
or pooled and penultimate side by side; each is the original network's own layer, and every verb reads the model
file back (its architecture name records the layer)."""

from __future__ import annotations

import json

import pytest
import torch

from mer_fastai.choices import LAYERS
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.archs import get_arch, layered
from mer_fastai.models.musicnn.network import MusicNN
from mer_fastai.models.musicnn.tags import TAGS
from mer_fastai.models.musicnn.transfer import SpectrogramInput, transfer_model
from mer_fastai.models.musicnn.weights import load_state
from mer_fastai.training.config import TrainConfig
from mer_fastai.training.feature_cache import is_random
from tests.models.test_musicnn_transfer import clips_data, pretrained  # noqa: F401  (fixtures)
from tests.test_cli import run_main


def original_layers(model: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The original network's layers for loader images, computed step by step (eval mode: no dropout)."""
    network = MusicNN(n_tags=len(TAGS[model]))
    network.load_state_dict(load_state(model))
    network.eval()
    with torch.no_grad():
        pooled = network.pool(network.midend(network.frontend(SpectrogramInput()(images))))
        penultimate = network.penultimate(pooled)
        tags = torch.sigmoid(network.head(penultimate))
    return {"penultimate": penultimate, "pooled": pooled, "tags": tags,
            "pooled+penultimate": torch.cat([pooled, penultimate], 1)}  # fmt: skip


@pytest.mark.parametrize("model", ["msd", "mtt"])
def test_each_layer_is_the_original_networks_layer(pretrained, model):  # noqa: F811
    torch.manual_seed(0)
    images = torch.rand(3, 1, 96, 187).expand(-1, 3, -1, -1)  # 16-bit images as the loaders scale them
    expected = original_layers(model, images)
    for layer in LAYERS:
        body = transfer_model(model, pretrained=True, layer=layer)[0].eval()
        assert not is_random(body), layer  # deterministic: freeze mode trains its head on cached features
        with torch.no_grad():
            out = body(images)
        assert out.shape == (3, body.feature_dim, 1, 1), layer
        torch.testing.assert_close(out[:, :, 0, 0], expected[layer], rtol=1e-5, atol=1e-5, msg=layer)


def test_the_feature_memo_tells_layers_with_the_same_weights_apart():
    """penultimate and pooled+penultimate bodies hold the same tensors; their cached features must not mix."""
    from mer_fastai.training.feature_cache import FeatureMemo

    bodies = {}
    for layer in LAYERS:
        torch.manual_seed(0)  # the same weights in every body
        bodies[layer] = transfer_model("msd", pretrained=False, layer=layer)[0].eval()
    same = bodies["penultimate"].state_dict().keys() == bodies["pooled+penultimate"].state_dict().keys()
    assert same and torch.equal(
        bodies["penultimate"].penultimate[1].weight, bodies["pooled+penultimate"].penultimate[1].weight
    )
    assert len({FeatureMemo.encoder_key(body) for body in bodies.values()}) == len(LAYERS)


def test_a_layered_name_is_an_architecture_of_its_own():
    spec = get_arch("musicnn-msd:pooled")
    assert (spec.layer, spec.model_name, spec.spectrogram) == ("pooled", "msd", "musicnn")
    assert layered("musicnn-mtt", "penultimate") == "musicnn-mtt" and get_arch("musicnn-mtt").layer is None
    with pytest.raises(MerError, match="unknown musicnn layer 'conv'"):
        get_arch("musicnn-msd:conv")
    with pytest.raises(MerError, match="unknown architecture"):
        get_arch("melcnn:pooled")


def test_layer_settings_are_checked_and_resolved():
    settings = TrainConfig(arch="musicnn-msd", layer="tags").check()
    assert settings.arch.name == "musicnn-msd:tags" and settings.config.arch == "musicnn-msd"
    with pytest.raises(MerError, match="--layer pooled: picks a layer of musicnn, not of melcnn; drop --layer"):
        TrainConfig(arch="melcnn", layer="pooled", weights="none").check()
    with pytest.raises(MerError, match="unknown --layer 'conv'"):
        TrainConfig(arch="musicnn-msd", layer="conv").check()
    default = TrainConfig(arch="musicnn-msd").fingerprint_settings()
    assert "layer" not in default  # folds and grid cells trained before --layer keep their fingerprints
    assert TrainConfig(arch="musicnn-msd", layer="pooled").fingerprint_settings()["layer"] == "pooled"


def test_train_with_a_layer_writes_a_model_every_verb_reads(pretrained, clips_data, tmp_path, capsys, monkeypatch):  # noqa: F811
    out = tmp_path / "run"
    command = ["train", str(clips_data), "--arch", "musicnn-msd", "--layer", "pooled+penultimate", "--epochs", "1",
               "--bs", "4", "--lr", "0.01", "--out", str(out)]  # fmt: skip
    code, err = run_main(command, capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == "musicnn-msd:pooled+penultimate" and metrics["cached_features"] is True
    predictor = Predictor.load(out)
    assert predictor.meta.arch == "musicnn-msd:pooled+penultimate"
    body = predictor.model[0][0]
    assert body.layer == "pooled+penultimate" and body.feature_dim == 1506 + 200
    audio = sorted((clips_data.parent / "audio").rglob("*.wav"))[0]
    code, err = run_main(["predict", str(out), str(audio), "--out", str(tmp_path / "p.json")], capsys, monkeypatch)
    assert code == 0, err
    written = (tmp_path / "p.json").read_text()
    assert audio.name in written and any(f'"{name}"' in written for name in predictor.meta.classes)
