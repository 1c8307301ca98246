"""Shared fixtures: tiny generated audio and data sets, and the real data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from mer_fastai.prepare import prepare_dataset
from mer_fastai.spectrogram import SpecConfig
from mer_fastai.synth import make_demo_audio

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_SPEC = SpecConfig(segment_seconds=1.0, n_mels=32, hop_length=512)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the shared/data folder beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_audio(tmp_path_factory) -> Path:
    """4 classes × 4 synthetic 2 s clips in class folders."""
    return make_demo_audio(tmp_path_factory.mktemp("audio"), clips_per_class=4, seconds=2.0, seed=1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_audio) -> Path:
    """A prepared data set of 1 s windows from `tiny_audio` (32 mel bands)."""
    out = tmp_path_factory.mktemp("data")
    prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=1, progress=False)
    return out
