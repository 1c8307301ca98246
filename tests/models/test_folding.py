"""`models.folding`: batch norms folded into their neighbours compute what the unfolded network computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mer_fastai.models.archs import get_arch
from mer_fastai.models.folding import FoldedFrontend, FoldedMidend, fold
from mer_fastai.models.modelfile import create_model
from mer_fastai.models.musicnn import weights
from mer_fastai.models.musicnn.network import MusicNN
from mer_fastai.models.musicnn.preprocessing import audio_patches
from mer_fastai.models.musicnn.transfer import transfer_model

TOLERANCE = 1e-5  # tags (probabilities) and features, max abs difference
REAL_CLIPS = ("Q1/MT0000040632", "Q2/MT0000216849", "Q3/MT0000088320", "Q4/MT0000054705")


def _scramble_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking batch norms: statistics away from (0, 1), some scales negative, one zero."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.weight.data[0] = 0.0 if n > 1 else module.weight.data[0]
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


def _musicnn(pretrained: bool) -> MusicNN:
    network = MusicNN()
    if pretrained:
        network.load_state_dict(weights.load_state("msd"))
    return network.eval()


def _assert_same(reference: torch.Tensor, folded: torch.Tensor, tolerance: float = TOLERANCE) -> None:
    assert reference.shape == folded.shape
    assert float((reference - folded).abs().max()) <= tolerance


def test_musicnn_folds_every_batch_norm_but_the_body_output_and_computes_the_same():
    network = _scramble_batch_norms(_musicnn(pretrained=False))
    folded = fold(network)
    assert isinstance(folded.frontend, FoldedFrontend) and isinstance(folded.midend, FoldedMidend)
    left = [m for m in folded.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert [m.num_features for m in left] == [1, 200]  # the input (one channel) and the features themselves
    x = torch.randn(6, 1, 96, 187, generator=torch.Generator().manual_seed(1)) * 2 + 1
    with torch.no_grad():
        _assert_same(torch.sigmoid(network(x)), torch.sigmoid(folded(x)))
        _assert_same(network.features(x), folded.features(x))
        _assert_same(network(x[:, :, :, :100]), folded(x[:, :, :, :100]), 1e-4)  # any length; logits


def test_fold_leaves_the_model_as_it_was():
    network = _scramble_batch_norms(_musicnn(pretrained=False)).train()
    before = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    folded = fold(network)
    assert network.training and not folded.training
    assert all(torch.equal(before[name], tensor) for name, tensor in network.state_dict().items())


@pytest.mark.parametrize("arch", ["melcnn", "musicnn-msd"])
def test_body_and_fastai_head_fold_but_the_last_linear_keeps_its_input(arch):
    """The head's `BN → Dropout → Linear` folds, except before the last Linear: its input is what embed reads."""
    spec = get_arch(arch)
    model = _scramble_batch_norms(create_model(spec, 4, full_model=lambda *_a, **_k: transfer_model("msd", False))
                                  if arch.startswith("musicnn") else create_model(spec, 4))  # fmt: skip
    folded = fold(model)
    head = list(folded[1])
    assert isinstance(head[2], nn.Identity) and isinstance(head[-3], nn.BatchNorm1d)
    if arch == "melcnn":
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded[0].modules())
    size = (96, 187) if arch.startswith("musicnn") else (64, 64)
    x = torch.rand(5, 3, *size, generator=torch.Generator().manual_seed(2))
    captured = []
    for network in (model, folded):
        network[1][-1].register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0]))
    with torch.no_grad():
        _assert_same(torch.softmax(model(x), 1), torch.softmax(folded(x), 1))
        _assert_same(model[0](x), folded[0](x), 1e-4)
    _assert_same(captured[0], captured[1], 1e-4)


def test_torchvision_residual_blocks_fold_through_torch_fx():
    import torchvision

    model = _scramble_batch_norms(torchvision.models.resnet18(weights=None))
    folded = fold(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) < 5  # the blocks' pairs are fused
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        _assert_same(torch.softmax(model(x), 1), torch.softmax(folded(x), 1))


@pytest.fixture(scope="module")
def msd() -> MusicNN:
    if not weights.cached("msd"):
        pytest.skip("the musicnn weights are not in the user cache (`mer-fastai weights get musicnn`)")
    return _musicnn(pretrained=True)


def test_pretrained_musicnn_folds_equal_on_generated_patches(msd):
    x = torch.rand(8, 1, 96, 187, generator=torch.Generator().manual_seed(4)) * 3
    folded = fold(msd)
    with torch.no_grad():
        _assert_same(torch.sigmoid(msd(x)), torch.sigmoid(folded(x)))
        _assert_same(msd.features(x), folded.features(x))


@pytest.mark.integration
def test_pretrained_musicnn_folds_equal_on_real_clips(msd, shared_data):
    folded = fold(msd)
    for clip in REAL_CLIPS:
        path = shared_data / "4q-dev" / f"{clip}.mp3"
        if not path.exists():
            pytest.skip(f"{path} is not in the shared data")
        x = torch.from_numpy(audio_patches(path))
        with torch.no_grad():
            _assert_same(torch.sigmoid(msd(x)), torch.sigmoid(folded(x)))
            _assert_same(msd.features(x), folded.features(x))
