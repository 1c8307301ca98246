"""`--mode partial`: the body's prefix frozen (weights and BatchNorm statistics) and cached, the rest and head learn."""

from __future__ import annotations

import pytest
import torch

from mer_fastai.api.training import find_lr, train
from mer_fastai.choices import MODES, STUDY_MODES
from mer_fastai.errors import MerError
from mer_fastai.experiments.recipe_schema import Stage
from mer_fastai.models.archs import get_arch
from mer_fastai.models.modelfile import create_model, read_model
from mer_fastai.models.prefix import split_body
from mer_fastai.training.fit import TrainConfig
from tests.training.test_fit import valid_accuracy


def tiny(**overrides) -> TrainConfig:
    values = {"arch": "squeezenet1_0", "weights": "none", "epochs": 1, "bs": 4, "size": 48, "num_workers": 0}
    return TrainConfig(**{**values, **overrides})


@pytest.mark.parametrize("arch", ["melcnn", "squeezenet1_0", "densenet121", "musicnn-msd"])
def test_prefix_then_rest_is_the_body(arch):
    spec = get_arch(arch)
    body = create_model(spec, 3)[0].eval()
    split = split_body(body)
    size = (96, 187) if spec.spectrogram else (64, 64)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(split.rest(split.prefix(x)), body(x))
    prefix, rest = ({id(p) for p in part.parameters()} for part in (split.prefix, split.rest))
    assert prefix and rest and not prefix & rest
    assert prefix | rest == {id(p) for p in body.parameters()}


def test_musicnn_prefix_is_its_front_end():
    spec = get_arch("musicnn-msd")
    body = create_model(spec, 3)[0]
    split = split_body(body)
    assert {id(p) for p in split.prefix.parameters()} == {id(p) for p in body[0].frontend.parameters()}
    with torch.no_grad():
        assert split.prefix.eval()(torch.rand(1, 3, 96, 187)).shape == (1, 561, 187)  # 0.42 MB per patch as float32


def test_a_body_without_stages_is_one_clear_error():
    with pytest.raises(MerError, match="--mode partial"):
        split_body(torch.nn.Linear(3, 3))


@pytest.fixture(scope="module")
def start_run(tiny_data, tmp_path_factory):
    return train(tiny_data, tiny(mode="whole"), tmp_path_factory.mktemp("start"), show=False)


@pytest.mark.parametrize("cache", [True, False])
def test_partial_freezes_the_prefix_and_trains_the_rest(tiny_data, tmp_path, start_run, cache):
    config = tiny(mode="partial", weights=str(start_run.run_dir), lr=1e-2, feature_cache=cache)
    result = train(tiny_data, config, tmp_path / "run", show=False)
    assert result.metrics["cached_features"] is cache and result.metrics["mode"] == "partial"
    assert not (tmp_path / "run" / "models").exists()  # the prefix cache went with the scratch folder
    before, _ = read_model(start_run.run_dir)
    after, meta = read_model(result.run_dir)
    assert before.keys() == after.keys()  # the whole network is saved
    model = create_model(get_arch("squeezenet1_0"), 4)
    names = {id(t): n for n, t in model.state_dict(keep_vars=True).items()}
    split = split_body(model[0])
    prefix = [names[id(t)] for t in split.prefix.state_dict(keep_vars=True).values()]
    rest = [names[id(t)] for t in split.rest.state_dict(keep_vars=True).values() if t.dtype.is_floating_point]
    assert prefix and all(torch.equal(before[k], after[k]) for k in prefix)  # incl. BatchNorm statistics
    assert any(not torch.equal(before[k], after[k]) for k in rest)
    model.load_state_dict(after)
    assert valid_accuracy(model, meta, tiny_data) == pytest.approx(result.metrics["accuracy"])  # the scored model


def test_lr_find_in_partial_mode_leaves_no_cache(tiny_data, tmp_path):
    result = find_lr(tiny_data, tiny(mode="partial"), tmp_path / "lr")
    assert 1e-7 < result.suggestion < 10
    assert not (tmp_path / "lr" / "models").exists()


def test_a_recipe_stage_still_grids_the_study_modes():
    assert "partial" in MODES and Stage("s", "d").modes == list(STUDY_MODES) == ["freeze", "whole"]


def test_rest_and_head_on_the_cached_prefix_compute_the_whole_network(tiny_data, tmp_path):
    import numpy as np

    from mer_fastai.training.learner import build_learner, set_mode
    from mer_fastai.training.partial import CACHE_DIR, prefix_learner
    from mer_fastai.training.tensor_loaders import memory_dataloaders

    spec = get_arch("squeezenet1_0")
    dls = memory_dataloaders(tiny_data, size=48, bs=4, stats=spec.stats)
    learn = build_learner(dls, spec, "none", tmp_path)
    set_mode(learn, "partial")
    fitter = prefix_learner(learn)
    cached = np.load(tmp_path / "models" / CACHE_DIR / "valid.npy", mmap_mode="r")
    learn.model.eval()
    fitter.model.eval()
    with torch.no_grad():
        expected = learn.model(torch.cat([xb.as_subclass(torch.Tensor) for xb, _ in dls.valid]))
        torch.testing.assert_close(fitter.model(torch.from_numpy(np.array(cached))), expected, rtol=1e-4, atol=1e-5)
