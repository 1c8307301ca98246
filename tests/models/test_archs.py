"""The architecture table: every entry builds, splits, normalises and trains one batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mer_fastai.errors import MerError
from mer_fastai.models.archs import ARCHS, INCEPTION_STATS, MAX_SIZE, get_arch
from mer_fastai.models.weights import describe_cache, model_factory
from mer_fastai.training.learner import build_learner, set_mode
from mer_fastai.training.loaders import load_dataloaders

SIZES = {"inception_v3": 96}  # Inception needs at least 75 px


def one_batch_step(tiny_data: Path, name: str, mode: str, tmp_path: Path):
    spec = get_arch(name)
    dls = load_dataloaders(tiny_data, size=SIZES.get(name, 64), bs=4, stats=spec.stats, num_workers=0)
    learn = build_learner(dls, spec, "none", tmp_path)
    set_mode(learn, mode)
    learn.create_opt()
    learn.model.train()
    xb, yb = dls.one_batch()
    logits = learn.model(xb)
    learn.loss_func(logits, yb).backward()
    return learn, logits, dls


# musicnn reads its own 16-bit spectrograms: tests/models/test_musicnn_transfer.py trains it the same way
IMAGE_ARCHS = [name for name, spec in ARCHS.items() if spec.spectrogram is None]


@pytest.mark.parametrize("name", [*IMAGE_ARCHS, "timm/resnet18"])
def test_every_arch_trains_one_batch_with_a_body_head_split(tiny_data, tmp_path, name):
    learn, logits, dls = one_batch_step(tiny_data, name, "whole", tmp_path)
    assert logits.shape == (4, 4)
    body, head = learn.model[0], learn.model[1]
    groups = learn.splitter(learn.model)
    assert len(groups) == 2
    assert {id(p) for p in groups[0]} == {id(p) for p in body.parameters()}
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in body.parameters())
    assert all(p.grad is not None for p in head.parameters())
    normalize = [t for t in dls.after_batch.fs if type(t).__name__ == "Normalize"]
    assert len(normalize) == 1
    expected = INCEPTION_STATS[0] if name == "inception_v3" else get_arch(name).stats[0]
    assert torch.allclose(normalize[0].mean.flatten().cpu(), torch.tensor(expected))


def test_freeze_trains_only_the_head(tiny_data, tmp_path):
    learn, _, _ = one_batch_step(tiny_data, "squeezenet1_0", "freeze", tmp_path)
    assert not any(p.requires_grad for p in learn.model[0].parameters())
    assert all(p.requires_grad for p in learn.model[1].parameters())
    learn, _, _ = one_batch_step(tiny_data, "densenet121", "freeze", tmp_path)
    bn = [m for m in learn.model[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not any(p.requires_grad for m in bn for p in m.parameters())
    set_mode(learn, "freeze", train_bn=True)
    assert all(p.requires_grad for m in bn for p in m.parameters())


def test_inception_body_drops_the_auxiliary_classifier():
    model = model_factory(get_arch("inception_v3"), "none")()
    body = get_arch("inception_v3").cut(model)
    assert not any(type(m).__name__ == "InceptionAux" for m in body.modules())
    assert body(torch.randn(1, 3, 299, 299)).shape == (1, 2048, 8, 8)
    assert get_arch("inception_v3").input_size == 299


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(MerError, match="unknown architecture 'resnet9000'"):
        get_arch("resnet9000")
    with pytest.raises(MerError, match="unknown timm model"):
        get_arch("timm/not_a_model")


def test_imagenet_weights_come_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = get_arch("squeezenet1_0")
    planted = model_factory(spec, "none")()
    with torch.no_grad():
        for parameter in planted.parameters():
            parameter.fill_(0.125)
    cache = Path(describe_cache(spec))
    assert cache.is_relative_to(tmp_path)
    cache.parent.mkdir(parents=True)
    torch.save(planted.state_dict(), cache)
    loaded = model_factory(spec, "imagenet")()
    assert all(torch.all(p == 0.125) for p in loaded.parameters())


def test_missing_imagenet_weights_offline_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*_args, **_kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torch.hub.download_url_to_file", offline)
    with pytest.raises(MerError) as error:
        model_factory(get_arch("alexnet"), "imagenet")()
    message = str(error.value)
    assert "--weights none" in message and "alexnet" in message and "\n" not in message


def test_size_has_a_range_naming_the_option():
    spec = get_arch("alexnet")
    spec.check_size(MAX_SIZE)
    for size in (spec.min_size - 1, MAX_SIZE + 1, 100000):
        with pytest.raises(MerError, match=rf"--size {size} is too (small|large) for alexnet; use 63 to {MAX_SIZE} px"):
            spec.check_size(size)


def test_timm_weights_offline_fail_at_once_without_hub_retries(tmp_path, monkeypatch):
    import huggingface_hub.constants
    import timm.models._hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    probes, offline_during_download = [], []

    def unreachable(address, timeout):
        probes.append(address)
        raise OSError("network is unreachable")

    real_download = timm.models._hub.hf_hub_download

    def download(*args, **kwargs):
        offline_during_download.append(huggingface_hub.constants.HF_HUB_OFFLINE)
        return real_download(*args, **kwargs)

    monkeypatch.setattr("mer_fastai.models.archs.socket.create_connection", unreachable)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", download)
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    with pytest.raises(MerError) as error:
        model_factory(get_arch("timm/resnet18"), "imagenet")()
    assert probes and probes[0][0] == "huggingface.co"
    assert offline_during_download and all(offline_during_download)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is offline_before
    assert "--weights none" in str(error.value) and "timm/resnet18" in str(error.value)


def test_each_source_builds_from_its_table_entry():
    """`build_full_model` looks the source up in `SOURCES` (no ladder): every entry's source is there, and a
    local network built from it refuses pretrained weights in one line."""
    from mer_fastai.models.archs import SOURCES, build_full_model

    assert {spec.source for spec in ARCHS.values()} | {"timm"} == set(SOURCES)
    assert isinstance(build_full_model(get_arch("melcnn"), pretrained=False), torch.nn.Module)
    with pytest.raises(MerError, match="^melcnn has no pretrained weights; pass --weights none"):
        build_full_model(get_arch("melcnn"), pretrained=True)
