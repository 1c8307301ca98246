"""`train --precision`: the freeze-mode feature cache's body at bf16 or int8, checked, and nothing else changed."""

from __future__ import annotations

import json

import pytest
import torch

from mer_fastai.api.training import train
from mer_fastai.errors import MerError
from mer_fastai.models import precision as prec
from mer_fastai.models.modelfile import read_model
from mer_fastai.training.feature_cache import compute_features, feature_network
from tests.test_cli import run_main
from tests.training.test_fit import tiny, whole_run  # noqa: F401  (the module's trained start run)

CPU = torch.device("cpu")
LOWER = [p for p in ("bf16", "int8") if prec.supported(p, CPU)]


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()  # fmt: skip


def _loader() -> list[tuple[torch.Tensor, torch.Tensor]]:
    images = torch.rand(24, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    return [(images[i : i + 8], torch.arange(8)) for i in range(0, 24, 8)]


def test_features_pass_scales_by_each_features_range():
    reference = torch.tensor([[10.0, 1.0, 0.0], [5.0, 0.5, 0.01]])
    assert prec.features_pass(reference, reference + torch.tensor([[0.19, 0.019, 0.0039], [0.0, 0.0, 0.0]]))
    assert not prec.features_pass(reference, reference + torch.tensor([[0.0, 0.021, 0.0], [0.0, 0.0, 0.0]]))
    # a feature near zero everywhere is held to 2 % of the largest feature's range (2 % of 10), not of its own
    assert not prec.features_pass(reference, reference + torch.tensor([[0.0, 0.0, 0.0041], [0.0, 0.0, 0.0]]))
    assert not prec.features_pass(reference, reference + torch.tensor([[0.21, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert not prec.features_pass(reference, reference * float("nan"))


@pytest.mark.parametrize("name", [p for p in LOWER if p == "bf16"])  # int8 misses it (BENCHMARKS.md)
def test_bf16_features_stay_within_the_features_check(name):
    encoder, loader = _encoder(), _loader()
    exact, lowered = (feature_network(encoder, p, loader) for p in ("fp32", name))
    assert exact[0] == "fp32" and lowered[0] == name
    (a, ya), (b, yb) = (compute_features(net, f"test:{p}", loader) for p, net in (exact, lowered))
    with torch.no_grad():
        plain = torch.cat([encoder(x) for x, _ in loader])
    assert float((a - plain).abs().max()) <= 1e-5  # fp32: the folded encoder, the same features
    assert torch.equal(ya, yb) and prec.features_pass(a, b)


def test_auto_features_check_is_recorded_apart_from_the_outputs_check(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_FASTAI_CACHE", str(tmp_path))
    chosen, _ = feature_network(_encoder(), "auto", _loader())
    records = json.loads((tmp_path / "precision.json").read_text()) if LOWER else {}
    assert all(key.endswith(":features_pass") for key in records)
    verdicts = next(iter(records.values()), {})
    assert chosen == next((p for p in prec.FASTEST_FIRST if verdicts.get(p)), "fp32")


def test_auto_never_picks_features_that_move(tmp_path, monkeypatch):
    if not LOWER:
        pytest.skip("this CPU has neither fast bf16 nor int8")
    monkeypatch.setenv("MER_FASTAI_CACHE", str(tmp_path))
    real_lower = prec.lower

    def shifted(model, name, sample):
        network = real_lower(model, name, sample)
        return network if name == "fp32" else torch.nn.Sequential(network, _Scale())

    monkeypatch.setattr(prec, "lower", shifted)
    chosen, network = feature_network(_encoder(), "auto", _loader())
    assert chosen == "fp32" and not isinstance(network[-1], _Scale)


class _Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.05  # every feature 5 % off


@pytest.mark.parametrize("name", LOWER[:1])
def test_freeze_training_at_lower_precision_saves_the_same_kind_of_model(tiny_data, tmp_path, whole_run, name):  # noqa: F811
    settings = {"mode": "freeze", "weights": str(whole_run.run_dir), "lr": 1e-2}
    exact = train(tiny_data, tiny(**settings), tmp_path / "fp32", show=False)
    lowered = train(tiny_data, tiny(**settings, precision=name), tmp_path / name, show=False)
    assert exact.metrics["feature_precision"] == "fp32" and lowered.metrics["feature_precision"] == name
    assert json.loads((lowered.run_dir / "config.json").read_text())["precision"] == name
    start, _ = read_model(whole_run.run_dir)
    fast, meta = read_model(lowered.run_dir)
    assert {k: v.dtype for k, v in fast.items()} == {k: v.dtype for k, v in start.items()}  # nothing bf16 or int8
    assert all(torch.equal(fast[k], start[k]) for k in start if k.startswith("0."))  # the body untouched
    assert "precision" not in json.dumps(meta.to_dict())  # the model file records nothing precision-specific


def test_precision_without_the_feature_cache_is_refused(tiny_data, tmp_path, whole_run):  # noqa: F811
    with pytest.raises(MerError, match="--precision bf16: sets the arithmetic of the freeze-mode feature cache"):
        train(tiny_data, tiny(mode="whole", weights=str(whole_run.run_dir), precision="bf16"), tmp_path, show=False)


def test_cli_unknown_precision_is_one_line(tiny_data, tmp_path, capsys, monkeypatch):
    code, err = run_main(
        ["train", str(tiny_data), "-a", "squeezenet1_0", "--precision", "fp8", "--out", str(tmp_path)],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "unknown --precision 'fp8'; choose auto, fp32, bf16 or int8" in err
    assert "Traceback" not in err and not any(tmp_path.iterdir())
