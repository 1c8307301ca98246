"""Training levers for models from scratch: data-set normalisation, mixup, label smoothing, `melcnn`, and
ensembles of members normalised differently."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mer_fastai.errors import MerError
from mer_fastai.evaluation.ensemble import ensemble_models
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.archs import get_arch
from mer_fastai.models.melcnn import FREQUENCY_BANDS, WIDTHS, melcnn
from mer_fastai.models.modelfile import EnsembleModel, read_model, read_model_file
from mer_fastai.models.modelmeta import ModelMeta
from mer_fastai.training.config import TrainConfig
from mer_fastai.training.learner import build_learner
from mer_fastai.training.loaders import load_dataloaders
from tests.inference.test_predict import TINY_CONFIG, train_run
from tests.test_regression import study_set, va_data  # noqa: F401  (fixtures: a tiny valence + energy data set)


def _pixels(data_dir: Path) -> np.ndarray:
    """Every training pixel of a data set, in [0, 1]."""
    paths = sorted((data_dir / "train").rglob("*.png"))
    return np.concatenate([np.asarray(Image.open(p).convert("L"), np.float64).ravel() / 255 for p in paths])


@pytest.fixture(scope="module")
def dataset_norm_run(tiny_data, tmp_path_factory) -> Path:
    config = dataclasses.replace(TINY_CONFIG, norm="dataset")
    return train_run(tiny_data, tmp_path_factory.mktemp("norm"), config)


def test_dataset_norm_records_the_training_images_statistics_and_predict_uses_them(tiny_data, dataset_norm_run):
    pixels = _pixels(tiny_data)
    meta = read_model(dataset_norm_run)[1]
    assert meta.stats[0] == pytest.approx((pixels.mean(),) * 3, abs=1e-6)
    assert meta.stats[1] == pytest.approx((pixels.std(),) * 3, abs=1e-6)
    assert meta.stats != tuple(map(tuple, get_arch("squeezenet1_0").stats))
    # what predict feeds the model is what validation fed it: same probabilities as the run's own
    predictor = Predictor.load(dataset_norm_run, device="cpu")
    paths = sorted((tiny_data / "valid").rglob("*.png"))
    images = [np.asarray(Image.open(p).convert("L")) for p in paths]
    dls = load_dataloaders(tiny_data, size=meta.input_size, bs=64, stats=meta.stats, num_workers=0)
    with torch.no_grad():
        expected = torch.softmax(predictor.model(dls.valid.one_batch()[0].as_subclass(torch.Tensor)), 1)
    got = torch.softmax(predictor.logits(images), 1)
    order = [list(dls.valid_ds.items).index(p) for p in paths]
    assert torch.allclose(got, expected[order], atol=1e-4)


def test_label_smoothing_is_the_smoothed_cross_entropy(tiny_data, tmp_path):
    spec = get_arch("squeezenet1_0")
    dls = load_dataloaders(tiny_data, size=64, bs=4, stats=spec.stats, num_workers=0)
    learn = build_learner(dls, spec, "none", tmp_path, label_smoothing=0.2)
    logits = torch.randn(4, len(dls.vocab))
    targets = torch.tensor([0, 1, 2, 3]) % len(dls.vocab)
    log_p = torch.log_softmax(logits, 1)
    expected = (0.8 * -log_p[range(4), targets] + 0.2 * -log_p.mean(1)).mean()
    assert torch.allclose(learn.loss_func(logits, targets), expected, atol=1e-6)
    plain = build_learner(dls, spec, "none", tmp_path)
    assert torch.allclose(plain.loss_func(logits, targets), -log_p[range(4), targets].mean(), atol=1e-6)


def test_mixup_trains_on_blends(tiny_data, tmp_path):
    """Same seed, same data: the training losses differ only because mixup blends the batches."""
    runs = {}
    for mixup in (0.0, 0.4):
        config = dataclasses.replace(TINY_CONFIG, mixup=mixup, mode="freeze")
        train_run(tiny_data, tmp_path / str(mixup), config)
        runs[mixup] = json.loads((tmp_path / str(mixup) / "history.json").read_text())["history"][0]
        assert json.loads((tmp_path / str(mixup) / "metrics.json").read_text())["cached_features"] is (mixup == 0)
    assert runs[0.0]["train_loss"] != pytest.approx(runs[0.4]["train_loss"], rel=1e-3)


def test_classification_levers_are_refused_for_other_tasks(va_data, tmp_path):  # noqa: F811
    from mer_fastai.api.training import train

    for lever in ({"mixup": 0.4}, {"label_smoothing": 0.1}):
        config = dataclasses.replace(TINY_CONFIG, **lever)
        refused = "^--(mixup|label-smoothing) (blends|spreads) class labels; a regression data set has no classes"
        with pytest.raises(MerError, match=f"{refused}: drop it$"):
            train(va_data, config, tmp_path / "out", show=False)
        assert not (tmp_path / "out").exists()


def test_settings_checks():
    with pytest.raises(MerError, match="--label-smoothing must be below 1"):
        TrainConfig(arch="squeezenet1_0", weights="none", label_smoothing=1.0).check()
    with pytest.raises(MerError, match="--mixup must be a number from 0 to 100"):
        TrainConfig(arch="squeezenet1_0", weights="none", mixup=-1.0).check()
    with pytest.raises(MerError, match="--arch melcnn has no pretrained weights; pass --weights none"):
        TrainConfig(arch="melcnn").check()
    with pytest.raises(MerError, match="unknown --norm 'z'"):
        TrainConfig(arch="melcnn", weights="none", norm="z").check()


def test_melcnn_keeps_frequency_bands_apart():
    """Its body's features are (channels × frequency bands) at any input size; moving energy from a low to a
    high band changes them even though the time-and-frequency average of the input stays the same."""
    body = melcnn()[:-2].eval()
    assert body(torch.zeros(1, 3, 64, 96)).shape == body(torch.zeros(1, 3, 128, 128)).shape
    assert body(torch.zeros(1, 3, 64, 64)).shape == (1, WIDTHS[-1] * FREQUENCY_BANDS, 1, 1)
    low, high = torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128)
    low[..., 96:, :], high[..., :32, :] = 1.0, 1.0
    with torch.no_grad():
        assert not torch.allclose(body(low), body(high))


def test_an_ensemble_of_differently_normalised_members_feeds_each_its_own(dataset_norm_run, tiny_data, tmp_path):
    """A member trained with other statistics sees its own normalisation inside the ensemble."""
    import fastai.callback.schedule  # noqa: F401

    other = train_run(tiny_data, tmp_path / "other", dataclasses.replace(TINY_CONFIG, seed=3))  # arch stats
    target = tmp_path / "ens.safetensors"
    meta = ensemble_models([dataset_norm_run, other], target).meta
    assert meta.stats == read_model(dataset_norm_run)[1].stats
    assert "stats" not in meta.members[0] and meta.members[1]["stats"][0] == list(read_model(other)[1].stats[0])
    images = [np.asarray(Image.open(p).convert("L")) for p in sorted((tiny_data / "valid").rglob("*.png"))[:4]]
    members = [Predictor.load(run, device="cpu") for run in (dataset_norm_run, other)]
    expected = sum(torch.softmax(m.logits(images), 1) for m in members) / 2
    ensemble = Predictor.load(target, device="cpu")
    assert isinstance(ensemble.model, EnsembleModel)
    assert torch.allclose(torch.softmax(ensemble.logits(images), 1), expected, atol=1e-5)
    # a damaged member statistics record is refused like any malformed model file
    metadata = read_model_file(target)[1]
    metadata["members"][1]["stats"] = [[0.5], [0.2]]
    with pytest.raises(MerError, match="'stats' must be"):
        ModelMeta.from_dict(metadata, target)


def test_an_ensembles_renormalisation_moves_with_it_to_the_predicting_device():
    """The per-member (scale, shift) go where the model goes (a GPU), and are not part of the saved weights."""
    members = [torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten()) for _ in range(2)]
    model = EnsembleModel(members, renorm=[None, ([2.0] * 3, [0.5] * 3)])
    assert not any("renorm" in name for name in model.state_dict())
    x = torch.ones(1, 3, 1, 1)
    with torch.no_grad():
        inside = model.members[1](x * 2.0 + 0.5)
        expected = torch.log((torch.softmax(model.members[0](x), 1) + torch.softmax(inside, 1)) / 2)
        assert torch.allclose(model(x), expected, atol=1e-6)
        assert model.to("meta")(x.to("meta")).device.type == "meta"  # no tensor left behind on the CPU
