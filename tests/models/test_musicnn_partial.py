"""musicnn in `--mode partial` (front end frozen and cached, the rest trained) and on overlapping patches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from mer_fastai.api.training import train
from mer_fastai.data.dataset import read_manifest
from mer_fastai.data.spectrogram import musicnn_spec
from mer_fastai.errors import MerError
from mer_fastai.inference.predict import Predictor
from mer_fastai.models.musicnn import weights
from mer_fastai.models.musicnn.transfer import transfer_model
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.training.config import TrainConfig

RATE = 16000


@pytest.fixture(scope="module")
def pretrained() -> None:
    """The musicnn weights in the user cache, got as a user gets them; skipped only when they cannot be fetched."""
    try:
        weights.get_weights(models=["msd"])
    except MerError as exc:
        pytest.skip(f"the musicnn weights cannot be fetched: {exc}")


def _audio(root, task: str) -> tuple:
    """6 clips of 6.5 s (two 2.992 s patches each) and their labels for `task`."""
    t = np.arange(int(6.5 * RATE)) / RATE
    lines = []
    for k in range(6):
        folder = root / "audio" / ("low" if k < 3 else "high")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{k}.wav", (0.3 * np.sin(2 * np.pi * 150.0 * (k + 1) * t)).astype(np.float32), RATE)
        lines.append(f"{'low' if k < 3 else 'high'}/{k},{1 + k},{9 - k},{k % 2},{1 - k % 2}")
    (root / "labels.csv").write_text("file,valence,energy,calm,tense\n" + "\n".join(lines) + "\n")
    if task == "classification":
        return (), {}
    targets = ["valence", "energy"] if task == "regression" else ["calm", "tense"]
    return (None, root / "labels.csv"), {"id_column": "file", "task": task, "targets": targets}


@pytest.mark.parametrize("task", ["classification", "regression", "multilabel"])
def test_partial_trains_the_mid_end_on_the_cached_front_end(pretrained, tmp_path, task):
    args, options = _audio(tmp_path, task)
    data = tmp_path / "data"
    feature = "mood" if task == "classification" else args[0]
    prepare_dataset(tmp_path / "audio", data, feature, *args[1:], spec=musicnn_spec(), valid_pct=0.34,
                    progress=False, **options)  # fmt: skip
    config = TrainConfig(arch="musicnn-msd", mode="partial", epochs=1, bs=2, lr=0.01).check()
    result = train(data, config, tmp_path / "run", show=False)
    assert result.metrics["cached_features"] is True and result.metrics["mode"] == "partial"
    start = transfer_model("msd", pretrained=True)[0]
    predictor = Predictor.load(tmp_path / "run")
    body = predictor.model[0][0]
    for name, tensor in start.frontend.state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(tensor, body.frontend.state_dict()[name].cpu()), name
    assert any(not torch.equal(t, body.midend.state_dict()[n].cpu()) for n, t in start.midend.state_dict().items())
    track = predictor.predict(sorted((tmp_path / "audio").rglob("*.wav"))[0])
    assert len(track.windows) == 2


def test_the_cached_path_computes_what_the_whole_network_computes(pretrained, tmp_path):
    """rest + head on the cached front-end outputs = the full model on the images (eval mode), and the cache is
    one float32 (561, 187) array per patch, memory-mapped."""
    from mer_fastai.models.archs import get_arch
    from mer_fastai.training.learner import build_learner, set_mode
    from mer_fastai.training.partial import CACHE_DIR, prefix_learner
    from mer_fastai.training.tensor_loaders import memory_dataloaders

    _audio(tmp_path, "classification")
    prepare_dataset(tmp_path / "audio", tmp_path / "data", "mood", spec=musicnn_spec(), valid_pct=0.34, progress=False)
    spec = get_arch("musicnn-msd")
    dls = memory_dataloaders(tmp_path / "data", size=(96, 187), bs=2, stats=spec.stats)
    learn = build_learner(dls, spec, "pretrained", tmp_path / "run")
    set_mode(learn, "partial")
    fitter = prefix_learner(learn)
    cached = np.load(tmp_path / "run" / "models" / CACHE_DIR / "valid.npy", mmap_mode="r")
    assert isinstance(cached, np.memmap) and cached.dtype == np.float32 and cached.shape[1:] == (561, 187)
    learn.model.eval()
    fitter.model.eval()
    with torch.no_grad():
        images = torch.cat([xb.as_subclass(torch.Tensor) for xb, _ in dls.valid])
        expected = learn.model(images)
        got = fitter.model(torch.from_numpy(np.array(cached)))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    groups = learn.splitter(learn.model)
    assert {id(p) for p in groups[0]} == {id(p) for p in learn.model[0][0].frontend.parameters()}
    assert all(not p.requires_grad for p in groups[0]) and all(p.requires_grad for p in groups[1])


def test_overlapping_patches_in_prepare_and_predict(pretrained, tmp_path):
    """`prepare --spectrogram musicnn --hop-seconds` cuts patches every hop; predict `--hop` does the same from
    audio (the model's recorded hop by default); the track is the mean of its windows either way."""
    _audio(tmp_path, "classification")
    spec = musicnn_spec()
    half = round(spec.segment_seconds / 2, 3)
    overlap = dataclasses.replace(spec, segment_hop_seconds=half)
    prepare_dataset(tmp_path / "audio", tmp_path / "data", "mood", spec=overlap, valid_pct=0.34, progress=False)
    rows = read_manifest(tmp_path / "data")
    starts = sorted(r.segment_start for r in rows if r.clip_id == rows[0].clip_id)
    assert np.allclose(np.diff(starts), half, atol=1e-3) and len(starts) == 4
    config = TrainConfig(arch="musicnn-msd", mode="partial", epochs=1, bs=2, lr=0.01).check()
    train(tmp_path / "data", config, tmp_path / "run", show=False)
    predictor = Predictor.load(tmp_path / "run")
    clip = sorted((tmp_path / "audio").rglob("*.wav"))[0]
    recorded = predictor.predict(clip)  # the training hop
    assert [w.start for w in recorded.windows] == pytest.approx(starts, abs=1e-3)
    apart = predictor.predict(clip, hop=spec.segment_seconds)
    assert len(apart.windows) == 2
    for track in (recorded, apart):
        mean = np.mean([[w.probabilities[c] for c in predictor.classes] for w in track.windows], axis=0)
        assert [track.probabilities[c] for c in predictor.classes] == pytest.approx(mean.tolist(), abs=1e-6)
