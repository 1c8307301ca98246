"""`models.precision` and `--precision`: bf16 and int8 checked against fp32, `auto` choosing only what passed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mer_fastai.cli.main import app
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.models import precision as prec
from mer_fastai.models.archs import get_arch
from mer_fastai.models.modelfile import create_model
from mer_fastai.models.musicnn import weights
from mer_fastai.models.musicnn.network import MusicNN
from mer_fastai.models.musicnn.preprocessing import audio_patches
from tests.inference.test_predict import tiny_run  # noqa: F401  (the session's trained run folder)
from tests.test_cli import run_main

CPU = torch.device("cpu")
LOWER = [p for p in ("bf16", "int8") if prec.supported(p, CPU)]
REAL_CLIPS_PER_QUADRANT = 4  # 16 clips (about 160 patches) at three precisions in the test budget


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_FASTAI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _melcnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(get_arch("melcnn"), 4).eval()


def _batch(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def test_passes_checks_tolerance_agreement_and_finiteness():
    reference = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
    assert prec.passes(reference, reference + 0.019)
    assert not prec.passes(reference, reference + torch.tensor([[0.0, 0.03], [0.0, 0.0]]))
    assert not prec.passes(reference, torch.tensor([[0.49, 0.51], [0.4, 0.6]]))  # top class changed on 1 of 2
    assert not prec.passes(reference, reference * float("nan"))


def test_unknown_or_unsupported_precision_is_one_line():
    with pytest.raises(MerError, match="unknown --precision 'fp8'; use one of auto, fp32, bf16, int8"):
        prec.check_precision("fp8", CPU)
    with pytest.raises(MerError, match="--precision bf16: the bf16 path runs on a CPU only, not on cuda"):
        prec.check_precision("bf16", torch.device("cuda"))
    assert prec.check_precision("auto", torch.device("cuda")) == "auto"


@pytest.mark.parametrize("name", LOWER)
def test_lower_precision_stays_within_the_check_of_fp32(name):
    model, x = _melcnn(), _batch()
    network = prec.lower(model, name, x)
    with torch.no_grad():
        reference, lowered = torch.softmax(model(x), 1), torch.softmax(network(x), 1)
    assert prec.passes(reference, lowered)
    assert isinstance(network[1][-1], torch.nn.Linear)  # the head stays fp32: embed's hook still finds it


def test_auto_checks_once_records_and_never_picks_a_failed_precision(cache, monkeypatch):
    model, x = _melcnn(), _batch()
    chosen, _ = prec.choose(model, "auto", x, lambda logits: torch.softmax(logits, 1), CPU)
    records = json.loads((cache / "precision.json").read_text())
    (verdicts,) = records.values()
    assert set(verdicts) == set(LOWER[::-1][: len(verdicts)])
    assert chosen == next((p for p in prec.FASTEST_FIRST if verdicts.get(p)), "fp32")
    # a recorded failure is not tried again and not chosen
    records = {key: {p: False for p in LOWER} for key in records}
    (cache / "precision.json").write_text(json.dumps(records))
    monkeypatch.setattr(prec, "passes", lambda *_a: pytest.fail("a recorded verdict was checked again"))
    chosen, network = prec.choose(model, "auto", x, lambda logits: torch.softmax(logits, 1), CPU)
    assert chosen == "fp32"
    with torch.no_grad():
        assert float((model(x) - network(x)).abs().max()) <= 1e-4  # the folded fp32 network


def test_auto_fails_a_precision_whose_outputs_move(cache, monkeypatch):
    if not LOWER:
        pytest.skip("this CPU has neither fast bf16 nor int8")
    real_lower = prec.lower

    def noisy(model, name, sample):
        network = real_lower(model, name, sample)
        return network if name == "fp32" else torch.nn.Sequential(network, torch.nn.Dropout(0.0), _Shift())

    monkeypatch.setattr(prec, "lower", noisy)
    chosen, _ = prec.choose(_melcnn(), "auto", _batch(), lambda logits: torch.softmax(logits, 1), CPU)
    assert chosen == "fp32"
    assert not any(json.loads((cache / "precision.json").read_text()).popitem()[1].values())


class _Shift(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.arange(x.shape[1], dtype=x.dtype) * 3.0  # moves the probabilities far


@pytest.mark.parametrize("name", LOWER)
def test_predictor_at_lower_precision_predicts_and_embeds_like_fp32(tiny_run, tiny_audio, name):  # noqa: F811
    files = sorted(tiny_audio.rglob("*.wav"))[:3]
    exact, lowered = (Predictor.load(tiny_run, device="cpu", bs=4, precision=p) for p in ("fp32", name))
    for file in files:
        a, b = exact.predict(file), lowered.predict(file)
        assert a.label == b.label
        assert max(abs(a.probabilities[c] - b.probabilities[c]) for c in exact.classes) <= prec.TOLERANCE
    _, _, images = exact.window_images(files[0], *exact.window_settings())
    (fa, _), (fb, _) = exact.features(images), lowered.features(images)
    assert fa.shape == fb.shape and float((fa - fb).abs().max()) <= 0.05 * float(fa.abs().max())
    assert lowered.precision == name


def test_cli_precision_is_checked_in_one_line_and_recorded_by_evaluate(
    tiny_run,  # noqa: F811
    tiny_audio,
    tmp_path,
    capsys,
    monkeypatch,
):
    code, err = run_main(["predict", str(tiny_run), str(tiny_audio), "--precision", "fp8"], capsys, monkeypatch)
    assert code == 2 and "unknown --precision 'fp8'; use one of auto, fp32, bf16, int8" in err
    assert "Traceback" not in err
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", str(tiny_run), str(tiny_audio), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["precision"] == "fp32"


@pytest.mark.integration
def test_auto_picks_on_real_clips_only_a_precision_that_meets_the_criteria(shared_data, tmp_path, monkeypatch):
    """On 16 4q-dev clips (about 160 patches), each lower precision's tags against fp32's: the check (`passes`)
    refuses any precision that misses tag probabilities within 0.02, the same top-5 tags on ≥ 99 % of patches
    or the same top tag of the track (mean over patches) on ≥ 99 % of clips; `auto`, checking a sample of the
    patches, picks only one that meets them on all the clips (measured values: BENCHMARKS.md)."""
    if not weights.cached("msd"):
        pytest.skip("the musicnn weights are not in the user cache (`mer-fastai weights get musicnn`)")
    network = MusicNN()
    network.load_state_dict(weights.load_state("msd"))
    network.eval()
    monkeypatch.setenv("MER_FASTAI_CACHE", str(tmp_path))  # auto's record, after the weights are read
    folders = [shared_data / "4q-dev" / q for q in ("Q1", "Q2", "Q3", "Q4")]
    clips = [path for folder in folders for path in sorted(folder.glob("*.mp3"))[:REAL_CLIPS_PER_QUADRANT]]
    batches = [torch.from_numpy(audio_patches(path)) for path in clips]
    sample = torch.cat(batches[::3])
    meets = {"fp32": True}
    with torch.no_grad():
        reference = [torch.sigmoid(network(x)) for x in batches]
        for name in LOWER:
            lowered = prec.lower(network, name, sample)
            candidate = [torch.sigmoid(lowered(x)) for x in batches]
            worst = max(float((a - b).abs().max()) for a, b in zip(reference, candidate, strict=True))
            top5 = prec.agreement(torch.cat(reference), torch.cat(candidate), 5)
            tracks = np.mean([int(a.mean(0).argmax()) == int(b.mean(0).argmax()) for a, b in zip(reference, candidate)])
            meets[name] = worst <= prec.TOLERANCE and top5 >= prec.AGREEMENT and tracks >= prec.AGREEMENT
            assert prec.passes(torch.cat(reference), torch.cat(candidate)) <= meets[name], (name, worst, top5, tracks)
    chosen, _ = prec.choose(network, "auto", sample, torch.sigmoid, CPU)
    assert meets[chosen], (chosen, meets)
