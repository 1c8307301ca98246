"""Shared fixtures: tiny generated audio and data sets, and the real data beside the checkout."""

from __future__ import annotations

import os

# One math thread per test process: pytest-xdist already runs one process per core, and BLAS/OpenMP
# threads competing across processes made the suite several times slower.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from mer_fastai.data.spectrogram import SpecConfig  # noqa: E402
from mer_fastai.data.synth import make_demo_audio  # noqa: E402
from mer_fastai.errors import MerError  # noqa: E402
from mer_fastai.preparation.prepare import prepare_dataset  # noqa: E402

torch.set_num_threads(1)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_SPEC = SpecConfig(segment_seconds=1.0, n_mels=32, hop_length=512)


def pytest_configure(config) -> None:
    """Compile librosa's numba kernels once in the controlling process, before xdist workers start.

    A first (uncached) numba compile inside a pytest-xdist worker crashed with a segmentation fault in
    a fresh venv; compiled here, the workers load the kernels from numba's cache instead.
    """
    if hasattr(config, "workerinput"):
        return
    import numpy as np

    from mer_fastai.evaluation.baseline.features import window_features

    noise = np.random.default_rng(0).normal(0, 0.1, 22050 * 2).astype(np.float32)
    window_features(noise, 22050, 2048, 512)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the shared/data folder beside the checkout)")
    return SHARED_DATA


def copy_4q_clips(shared_data: Path, dest: Path, per_quadrant: int) -> Path:
    """The first `per_quadrant` mp3 files of each 4q-dev quadrant copied into `dest/Q<k>/` (skips without them)."""
    source = shared_data / "4q-dev"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    for quadrant in ("Q1", "Q2", "Q3", "Q4"):
        (dest / quadrant).mkdir(parents=True)
        for clip in sorted((source / quadrant).glob("*.mp3"))[:per_quadrant]:
            shutil.copy(clip, dest / quadrant / clip.name)
    return dest


@pytest.fixture
def four_q_sample(shared_data, tmp_path) -> Path:
    """16 real clips of 4q-dev (the first 4 mp3 files of each quadrant) copied into `tmp_path/audio/Q<k>/`."""
    return copy_4q_clips(shared_data, tmp_path / "audio", 4)


@pytest.fixture(scope="module")
def musicnn_ready() -> None:
    """Skips (with the reason) when the musicnn weights cannot be fetched into the user cache."""
    from mer_fastai.models.musicnn import weights

    try:
        weights.get_weights()
    except MerError as exc:
        pytest.skip(f"the musicnn weights cannot be fetched: {exc}")


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
