"""The speed-ups keep the results: in-memory loaders, cached frozen features, the faster spectrogram and decoding."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from mer_fastai.api.training import train
from mer_fastai.data.audio import load_audio
from mer_fastai.data.spectrogram import SpecConfig, mel_filters, mel_image, mel_power
from mer_fastai.errors import MerError
from mer_fastai.models.archs import IMAGENET_STATS, get_arch
from mer_fastai.models.modelfile import create_model, read_model
from mer_fastai.tasks.opened import open_dataset
from mer_fastai.training.feature_cache import can_cache, is_random
from mer_fastai.training.fit import TrainConfig, _learner
from mer_fastai.training.loaders import load_dataloaders
from mer_fastai.training.tensor_loaders import memory_dataloaders


def tiny(**overrides) -> TrainConfig:
    values = {"arch": "squeezenet1_0", "weights": "none", "epochs": 2, "bs": 4, "size": 40, "num_workers": 0}
    return TrainConfig(**{**values, **overrides})


def test_in_memory_batches_equal_the_datablock_ones(tiny_data):
    fastai_dls = load_dataloaders(tiny_data, size=(36, 44), bs=4, stats=IMAGENET_STATS, num_workers=0)
    memory_dls = memory_dataloaders(tiny_data, size=(36, 44), bs=4, stats=IMAGENET_STATS)
    assert list(memory_dls.vocab) == list(fastai_dls.vocab)
    assert len(memory_dls.valid_ds) == len(fastai_dls.valid_ds)
    for (xa, ya), (xb, yb) in zip(fastai_dls.valid, memory_dls.valid, strict=True):
        assert xb.shape == xa.shape == (len(ya), 3, 36, 44)
        assert torch.allclose(xa, xb, atol=1e-6)
        assert torch.equal(ya, yb)
    first, mine = (dl.after_batch(dl.do_batch([dl.do_item(0)])) for dl in (fastai_dls.train, memory_dls.train))
    assert torch.allclose(first[0], mine[0], atol=1e-6) and torch.equal(first[1], mine[1])


def test_in_memory_loader_options(tiny_data):
    dls = memory_dataloaders(tiny_data, size=32, bs=4, stats=IMAGENET_STATS, augment="specaugment", balanced=True)
    xb, yb = dls.train.one_batch()
    assert xb.shape == (4, 3, 32, 32) and xb.dtype == torch.float32 and len(dls.train) == len(dls.train_ds) // 4
    assert type(dls.train).__name__ == "WeightedDL"
    with pytest.raises(MerError, match="no-cache"):
        memory_dataloaders(tiny_data, size=32, augment="study")


def test_cache_applies_only_where_it_is_exact(tiny_data, tmp_path):
    learn = _learner(open_dataset(tiny_data), tiny(), tmp_path)
    assert can_cache(learn, "freeze", False, "none")
    assert not can_cache(learn, "whole", False, "none")
    assert not can_cache(learn, "freeze", True, "none")
    assert not can_cache(learn, "freeze", False, "specaugment")
    assert is_random(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout(0.2))) and not is_random(nn.Dropout(0.0))


class CountImages:
    """A forward hook that counts the images going through a module."""

    def __init__(self) -> None:
        self.images = 0

    def __call__(self, _module, inputs, _output) -> None:
        self.images += len(inputs[0])

    def __deepcopy__(self, memo: dict) -> CountImages:
        return self  # the folded copy that inference runs (`models.folding.fold`) counts here too


def test_cached_freeze_runs_the_body_once_and_keeps_it(tiny_data, tmp_path, monkeypatch):
    train_module = importlib.import_module("mer_fastai.training.fit")

    counter = CountImages()
    original = train_module._learner

    def counted(*args, **kwargs):
        learn = original(*args, **kwargs)
        learn.model[0].register_forward_hook(counter)
        return learn

    monkeypatch.setattr(train_module, "_learner", counted)
    start = train(tiny_data, tiny(mode="whole", epochs=1, lr=1e-3), tmp_path / "start", show=False)
    counter.images = 0
    run = train(tiny_data, tiny(weights=str(start.run_dir), epochs=3), tmp_path / "freeze", show=False)
    n_images = sum(
        sum(split.values()) for split in json.loads((tiny_data / "dataset.json").read_text())["counts"].values()
    )
    assert run.metrics["cached_features"] is True
    assert counter.images == n_images  # once over every image: not per epoch, not in lr_find or get_preds
    before, _ = read_model(start.run_dir)
    after, meta = read_model(run.run_dir)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("0."))  # incl. BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("1."))
    history = json.loads((run.run_dir / "history.json").read_text())["history"]
    assert len(history) == 3 and all(row["seconds"] > 0 for row in history)
    model = create_model(get_arch(meta.arch), len(meta.classes))
    model.load_state_dict(after)
    model.eval()
    dls = load_dataloaders(tiny_data, size=meta.input_size, bs=8, stats=meta.stats, num_workers=0)
    with torch.no_grad():
        predicted = torch.cat([model(xb).argmax(1) for xb, _ in dls.valid])
    targets = torch.cat([yb for _, yb in dls.valid])
    assert float((predicted == targets).float().mean()) == pytest.approx(run.metrics["accuracy"])


def test_mel_power_filters_and_image_are_librosas():
    import librosa

    signal = np.random.default_rng(0).normal(0, 0.1, 22050 * 2).astype(np.float32)
    configs = (SpecConfig(), SpecConfig(n_mels=64, n_fft=1024, fmin=40.0, fmax=8000.0), SpecConfig(sample_rate=16000))
    for config in configs:
        kwargs = {"sr": config.sample_rate, "n_fft": config.n_fft, "n_mels": config.n_mels}
        kwargs |= {"fmin": config.fmin, "fmax": config.fmax}
        assert np.array_equal(mel_filters(config), librosa.filters.mel(**kwargs))
        expected = librosa.feature.melspectrogram(y=signal, hop_length=config.hop_length, **kwargs)
        power = mel_power(signal, config)
        assert power.shape == expected.shape and power.dtype == expected.dtype == np.float32
        np.testing.assert_allclose(power, expected, rtol=2e-5, atol=expected.max() * 1e-7)
        decibels = librosa.power_to_db(power, ref=np.max, top_db=config.top_db)  # the image librosa would make
        image = np.flipud(np.round((decibels + config.top_db) / config.top_db * 255).clip(0, 255).astype(np.uint8))
        assert np.array_equal(mel_image(signal, config), image)


def test_load_audio_is_librosa_load_sample_for_sample(tmp_path):
    import librosa
    import soundfile

    rng = np.random.default_rng(0)
    stereo = rng.normal(0, 0.1, (44100, 2)).astype(np.float32)
    for rate, name, data in (
        (44100, "stereo.wav", stereo),
        (16000, "mono.flac", stereo[:16000, 0]),
        (22050, "same.wav", stereo[:, 1]),
    ):
        path = tmp_path / name
        soundfile.write(path, data, rate)
        for target in (22050, 16000, 48000):  # 44100 samples at 44.1 kHz → 48 kHz: librosa's length rounding
            expected = librosa.load(path, sr=target, mono=True)[0]
            decoded = load_audio(path, target)
            assert decoded.dtype == expected.dtype and np.array_equal(decoded, expected), (name, target)


def test_load_audio_matches_librosa_on_the_real_soundtrack_clips(shared_data):
    import librosa

    audio = shared_data / "soundtracks-set1-sample" / "audio"
    files = sorted(audio.glob("*.mp3"))[:2] + sorted(audio.glob("*.wav"))[:2]  # 44.1/48 kHz stereo mp3 and wav
    assert len(files) == 4
    for path in files:
        assert np.array_equal(load_audio(path, 22050), librosa.load(path, sr=22050, mono=True)[0]), path


def test_images_of_real_music_are_librosas_to_one_grey_level(shared_data):
    import librosa

    config = SpecConfig()
    files = (
        sorted((shared_data / "4q-dev").glob("Q*/*.mp3"))[::150]
        + sorted((shared_data / "soundtracks-set1-sample" / "audio").glob("*.wav"))[:2]
    )
    differing = total = 0
    for path in files:
        signal = librosa.load(path, sr=config.sample_rate, mono=True)[0][: config.sample_rate * 10]
        power = librosa.feature.melspectrogram(y=signal, sr=config.sample_rate, fmin=config.fmin)
        decibels = librosa.power_to_db(power, ref=np.max, top_db=config.top_db)
        expected = np.flipud(np.round((decibels + 80) / 80 * 255).clip(0, 255).astype(np.uint8)).astype(int)
        difference = np.abs(mel_image(signal, config).astype(int) - expected)
        assert difference.max() <= 1, path  # float32 vs librosa's float64 FFT: a rounding step at most
        differing, total = differing + np.count_nonzero(difference), total + difference.size
    assert differing / total < 1e-3
