"""Mel-spectrogram settings and the signal → image conversion they define."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import MerError

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

CONFIG_FILE = "spectrogram.json"


@dataclass(frozen=True)
class SpecConfig:
    """Everything that turns audio into a spectrogram image; saved beside every data set and model."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 20.0
    fmax: float | None = None
    top_db: float = 80.0
    segment_seconds: float = 10.0
    segment_hop_seconds: float | None = None
    image_height: int | None = None
    image_width: int | None = None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise MerError("spectrogram settings must be positive: sample_rate, n_fft, hop_length, n_mels")
        if self.segment_seconds <= 0:
            raise MerError("segment_seconds must be positive; check --segment-seconds")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise MerError(f"fmax {self.fmax} Hz is above the Nyquist frequency {self.sample_rate / 2} Hz")
        if self.top_db <= 0:
            raise MerError("top_db (the dB range of the image) must be positive")

    @property
    def hop_seconds(self) -> float:
        """Window hop in seconds (non-overlapping windows by default)."""
        return self.segment_hop_seconds or self.segment_seconds

    @property
    def native_size(self) -> tuple[int, int]:
        """(height, width) of a window's spectrogram before any resizing."""
        frames = 1 + int(round(self.segment_seconds * self.sample_rate)) // self.hop_length
        return self.n_mels, frames

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the saved image."""
        height, width = self.native_size
        return self.image_height or height, self.image_width or width

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash that changes whenever any setting changes."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict, source: str = "spectrogram settings") -> SpecConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MerError(
                f"{source}: unknown spectrogram setting(s) {', '.join(unknown)}; known: {sorted(known)}"
            )
        return cls(**values)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> SpecConfig:
        path = Path(folder) / CONFIG_FILE
        if not path.exists():
            raise MerError(f"{path}: missing; is {folder} a data set made by `mer-fastai prepare`?")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise MerError(f"{path}: not valid JSON ({exc}); rerun `mer-fastai prepare`") from exc
        return cls.from_dict(values, source=str(path))


@functools.cache
def _blas() -> ThreadpoolController:
    """numpy's BLAS thread pools, to run the small mel projection on one thread."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@functools.lru_cache(maxsize=8)
def mel_basis(config: SpecConfig) -> np.ndarray:
    """The mel filter bank of `config` (built once per setting, not once per window)."""
    import librosa

    return librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    )


def mel_power(window: np.ndarray, config: SpecConfig) -> np.ndarray:
    """`librosa.feature.melspectrogram` of one window, computed the same way but faster.

    The filter bank is cached, and the projection runs on one BLAS thread: multi-threaded OpenBLAS makes
    this small product about 30 times slower on a busy 2-core machine, and prepare runs a process per core.
    """
    import librosa

    spectrum = np.abs(librosa.stft(window, n_fft=config.n_fft, hop_length=config.hop_length)) ** 2.0
    with _blas().limit(limits=1, user_api="blas"):
        return np.einsum("...ft,mf->...mt", spectrum, mel_basis(config), optimize=True)


def mel_image(window: np.ndarray, config: SpecConfig) -> np.ndarray:
    """Mel-spectrogram of one window as a uint8 image, low frequencies at the bottom."""
    import librosa

    power = mel_power(window, config)
    if power.max() <= 1e-10:  # silence: a black image rather than a flat 0 dB one
        image = np.zeros(power.shape, dtype=np.uint8)
    else:
        decibels = librosa.power_to_db(power, ref=np.max, top_db=config.top_db)
        image = np.round((decibels + config.top_db) / config.top_db * 255).clip(0, 255).astype(np.uint8)
    image = np.flipud(image)
    if (config.image_height, config.image_width) != (None, None):
        image = resize_image(image, config.image_size)
    return np.ascontiguousarray(image)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 (height, width) image with bilinear filtering."""
    from PIL import Image

    height, width = size
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
