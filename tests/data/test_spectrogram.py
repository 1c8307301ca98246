"""Spectrogram settings and images."""

from __future__ import annotations

import numpy as np
import pytest

from mer_fastai.data.spectrogram import SpecConfig, mel_image
from mer_fastai.errors import MerError


def test_config_round_trips_and_digest_tracks_every_setting(tmp_path):
    config = SpecConfig(n_mels=64, segment_seconds=5.0)
    config.save(tmp_path)
    assert SpecConfig.load(tmp_path) == config
    assert SpecConfig(n_mels=65).digest() != SpecConfig(n_mels=64).digest()
    assert SpecConfig().digest() == SpecConfig().digest()


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(MerError, match="Nyquist"):
        SpecConfig(sample_rate=16000, fmax=9000)
    with pytest.raises(MerError, match="segment_seconds"):
        SpecConfig(segment_seconds=0)
    (tmp_path / "spectrogram.json").write_text('{"n_mels": 64, "colour": 1}')
    with pytest.raises(MerError, match="colour"):
        SpecConfig.load(tmp_path)
    with pytest.raises(MerError, match="missing"):
        SpecConfig.load(tmp_path / "nowhere")


def test_image_shape_orientation_and_silence():
    config = SpecConfig(segment_seconds=1.0, n_mels=32)
    t = np.arange(config.sample_rate) / config.sample_rate
    low = mel_image(np.sin(2 * np.pi * 100 * t).astype(np.float32), config)
    high = mel_image(np.sin(2 * np.pi * 5000 * t).astype(np.float32), config)
    assert low.shape == config.native_size and low.dtype == np.uint8
    # low frequencies are drawn at the bottom of the image, like a plot
    assert np.argmax(low.mean(axis=1)) > np.argmax(high.mean(axis=1))
    assert mel_image(np.zeros(config.sample_rate, dtype=np.float32), config).max() == 0


def test_image_size_setting_resizes():
    config = SpecConfig(segment_seconds=1.0, n_mels=32, image_height=40, image_width=50)
    image = mel_image(np.random.default_rng(0).normal(size=config.sample_rate).astype(np.float32), config)
    assert image.shape == (40, 50)


def test_the_window_hop_defaults_to_the_settings_then_to_the_window():
    spec = SpecConfig(segment_seconds=4.0, segment_hop_seconds=1.0)
    assert spec.windowing() == (4.0, 1.0)  # the settings' window and hop
    assert spec.windowing(2.0) == (2.0, 2.0)  # another window hops by itself
    assert spec.windowing(2.0, 0.5) == (2.0, 0.5) and spec.windowing(hop=3.0) == (4.0, 3.0)
    assert SpecConfig(segment_seconds=4.0).windowing() == (4.0, 4.0)


def test_prepare_options_come_from_the_settings_and_a_preset_takes_only_the_hop():
    from mer_fastai.cli.options import spec_settings

    assert spec_settings({"spectrogram": None, "n_mels": 64, "sample_rate": None}) == SpecConfig(n_mels=64)
    musicnn = spec_settings({"spectrogram": "musicnn", "segment_hop_seconds": 1.0})
    assert musicnn.compression == "log10_1p" and musicnn.segment_hop_seconds == 1.0
    with pytest.raises(MerError, match=r"--spectrogram musicnn sets --n-fft, --n-mels itself"):
        spec_settings({"spectrogram": "musicnn", "n_fft": 1024, "n_mels": 64})
