"""Mel-spectrogram settings and the signal → image conversion they define.

Two compressions of the mel power P:
- `db` (default): dB below each window's peak over `top_db`, an 8-bit image (the study's spectrograms);
- `log10_1p`: log10(1 + 10000·P) with no per-window normalisation, stored as a 16-bit image with
  `LOG_SCALE` steps per unit (musicnn's input, `PRESETS["musicnn"]`).
Two framings: `window` (each window is its own centred, zero-padded STFT) and `clip` (a window's frames are
those of the whole clip's centred STFT, as musicnn cuts its 3 s patches).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._plumbing.files import atomic_write
from ..bounds import Bounds, quote
from ..errors import MerError
from ..settings import check_setting, long_flag, setting
from .audio import window_starts, windows
from .images import resize

if TYPE_CHECKING:
    import scipy.sparse

__all__ = ["SpecConfig", "musicnn_spec"]

SPEC_FILE = "spectrogram.json"
FFT_BLOCK = 64  # STFT frames transformed per FFT call
MIN_LOG_MEL = 1000.0 / (200.0 / 3)  # where Slaney's scale turns logarithmic, computed as librosa does
AMIN = 1e-10  # power floor of the dB conversion (librosa's amin)
COMPRESSIONS = ("db", "log10_1p")
FRAMINGS = ("window", "clip")
LOG_SCALE = 4096.0  # 16-bit image steps per unit of log10(1 + 10000·P): values up to 16, error ≤ 1.3e-4
LOG_GAIN = 10000.0
PRESET_KEY = "preset"
MAX_PIXELS = 1 << 24  # a window's native image (mel bands × frames): 16 Mpixels, e.g. 1024 bands × 16384 frames
SECONDS = Bounds(0, 3600, above=True)  # a window or its hop: above 0, at most an hour
HERTZ = Bounds(0, 192_000)
WHOLE = Bounds(1, 16_384, whole=True)
# settings added after data sets existed: left out of `to_dict` at their defaults, so old digests still hold
LATER_DEFAULTS = {"compression": "db", "framing": "window"}


@dataclass(frozen=True)
class SpecConfig:
    """Everything that turns audio into a spectrogram image; saved beside every data set and model.

    The settings with `flags` are `prepare`'s options (`cli.options.with_spec_options`), declared here once
    (`settings.setting`).
    """

    sample_rate: int = setting(
        22050,
        flags=("--sample-rate",),
        help="Resampling rate in Hz (default {default}).",
        bounds=Bounds(1000, 384_000, whole=True),
    )
    n_fft: int = setting(
        2048, flags=("--n-fft",), help="FFT size (default {default}).", bounds=Bounds(16, 65_536, whole=True)
    )
    hop_length: int = setting(
        512,
        flags=("--hop-length",),
        help="STFT hop in samples (default {default}).",
        bounds=Bounds(1, 65_536, whole=True),
    )
    n_mels: int = setting(
        128,
        flags=("--n-mels",),
        help="Mel bands (image height; default {default}).",
        bounds=Bounds(1, 1024, whole=True),
    )
    fmin: float = setting(20.0, bounds=HERTZ)
    fmax: float | None = setting(None, bounds=HERTZ)
    top_db: float = setting(80.0, bounds=Bounds(0, 1000, above=True))
    segment_seconds: float = setting(
        10.0, flags=("--segment-seconds",), help="Window length in seconds (default {default:g}).", bounds=SECONDS
    )
    # the window hop: THE default of every command that cuts windows (`windowing`)
    segment_hop_seconds: float | None = setting(
        None, flags=("--hop-seconds",), help="Window hop in seconds (default: the window length).", bounds=SECONDS
    )
    image_height: int | None = setting(None, bounds=WHOLE)
    image_width: int | None = setting(None, bounds=WHOLE)
    compression: str = "db"  # one of COMPRESSIONS
    framing: str = "window"  # one of FRAMINGS

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise MerError(f"unknown compression {quote(self.compression)}; choose one of {', '.join(COMPRESSIONS)}")
        if self.framing not in FRAMINGS:
            raise MerError(f"unknown framing {quote(self.framing)}; choose one of {', '.join(FRAMINGS)}")
        for item in dataclasses.fields(self):
            if item.metadata:  # the settings (`settings.setting`), not compression and framing
                flag = long_flag(item)
                check_setting(item, getattr(self, item.name), f"{item.name} ({flag})" if flag else item.name)
        height, width = self.native_size
        if height * width > MAX_PIXELS:
            raise MerError(
                f"a {self.segment_seconds:g} s window at {self.sample_rate} Hz, hop_length {self.hop_length}, makes "
                f"a {height} × {width} image, over {MAX_PIXELS} pixels; shorten --segment-seconds or raise --hop-length"
            )
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise MerError(f"fmax {self.fmax} Hz is above the Nyquist frequency {self.sample_rate / 2} Hz")

    @property
    def hop_seconds(self) -> float:
        """Window hop in seconds (non-overlapping windows by default)."""
        return self.segment_hop_seconds or self.segment_seconds

    def windowing(self, window: float | None = None, hop: float | None = None) -> tuple[float, float]:
        """(window, hop) in seconds: these settings' window and hop by default; a window of another length hops
        by its own length unless `hop` is given. The one rule prepare, predict, evaluate and embed cut by."""
        seconds = self.segment_seconds if window is None else window
        return seconds, (self.hop_seconds if window is None else seconds) if hop is None else hop

    @property
    def native_size(self) -> tuple[int, int]:
        """(height, width) of a window's spectrogram before any resizing."""
        samples = int(round(self.segment_seconds * self.sample_rate))
        frames = samples // self.hop_length if self.framing == "clip" else 1 + samples // self.hop_length
        return self.n_mels, frames

    @property
    def bit_depth(self) -> int:
        """Bits per pixel of the saved image: 8 for dB images, 16 for log-compressed ones."""
        return 16 if self.compression == "log10_1p" else 8

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the saved image."""
        height, width = self.native_size
        return self.image_height or height, self.image_width or width

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        for name, default in LATER_DEFAULTS.items():
            if values[name] == default:
                del values[name]
        return values

    def digest(self) -> str:
        """Short hash that changes whenever any setting changes."""
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict, source: str = "spectrogram settings") -> SpecConfig:
        """Settings from plain data; a `preset` key (e.g. "musicnn") starts from that preset's settings, which
        the other keys then change."""
        values = dict(values)
        name = values.pop(PRESET_KEY, None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MerError(
                f"{source}: unknown spectrogram setting(s) {', '.join(unknown)}; known: {sorted([PRESET_KEY, *known])}"
            )
        if name is None:
            return cls(**values)
        if name not in PRESETS:
            raise MerError(f"{source}: unknown spectrogram preset {quote(name)}; choose one of {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name](), **values)

    def save(self, folder: str | Path) -> Path:
        """Write `spectrogram.json` into `folder` atomically."""
        return atomic_write(Path(folder) / SPEC_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> SpecConfig:
        path = Path(folder) / SPEC_FILE
        if not path.exists():
            raise MerError(f"{path}: missing; is {folder} a data set made by `mer-fastai prepare`?")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise MerError(f"{path}: not valid JSON ({exc}); rerun `mer-fastai prepare`") from exc
        return cls.from_dict(values, source=str(path))


def musicnn_spec() -> SpecConfig:
    """musicnn's input (Pons & Serra 2019): 16 kHz, 512-point FFT, hop 256, 96 Slaney mel bands from 0 Hz,
    log10(1 + 10000·P), 3 s patches of 187 frames cut from the clip's STFT without overlap."""
    hop, frames, rate = 256, 187, 16000
    return SpecConfig(
        sample_rate=rate,
        n_fft=512,
        hop_length=hop,
        n_mels=96,
        fmin=0.0,
        segment_seconds=frames * hop / rate,
        compression="log10_1p",
        framing="clip",
    )


PRESETS = {"musicnn": musicnn_spec}


def preset(name: str) -> SpecConfig:
    """The spectrogram settings named `name` (see `PRESETS`), or one clear error."""
    if name not in PRESETS:
        raise MerError(f"unknown spectrogram preset {quote(name)}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear to 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log = MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * (200.0 / 3)
    return np.where(mel >= MIN_LOG_MEL, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - MIN_LOG_MEL)), linear)


def mel_filters(config: SpecConfig) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax): triangular Slaney-normalised bands, float32.

    Written out here so that making spectrograms never imports librosa (2 s per process).
    """
    fmax = config.fmax if config.fmax is not None else config.sample_rate / 2
    fft_hz = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(fmax), config.n_mels + 2))
    ramps = np.subtract.outer(edges, fft_hz)
    widths = np.diff(edges)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney: equal area per band
    return weights


@functools.lru_cache(maxsize=8)
def mel_basis(config: SpecConfig) -> scipy.sparse.csr_matrix:
    """`mel_filters(config)` as a sparse matrix, built once per setting.

    Each mel band is a triangle over a few FFT bins: the sparse product does ~2 multiply-adds per bin and
    frame instead of `n_mels`.
    """
    import scipy.sparse

    return scipy.sparse.csr_matrix(mel_filters(config))


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """librosa's STFT window, the periodic Hann window (`scipy.signal.get_window("hann", n_fft)`), float32."""
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def mel_power(window: np.ndarray, config: SpecConfig) -> np.ndarray:
    """`librosa.feature.melspectrogram` of one window (n_mels, frames), to float32 rounding, ~3× faster.

    The same definition — centred frames with zero padding, periodic Hann window, power 2, librosa's
    Slaney mel filter bank — computed in single precision, FFT_BLOCK frames at a time (blocks that stay
    in the core's cache) with a sparse filter-bank product, on one thread (prepare runs a process per core).
    """
    n_fft = config.n_fft
    padded = np.zeros(len(window) + 2 * (n_fft // 2), dtype=np.float32)
    padded[n_fft // 2 : n_fft // 2 + len(window)] = window
    return _frames_power(np.lib.stride_tricks.sliding_window_view(padded, n_fft)[:: config.hop_length], config)


def clip_mel_power(signal: np.ndarray, start: int, frames: int, config: SpecConfig) -> np.ndarray:
    """Mel power (n_mels, `frames`) of the whole clip's centred STFT, frames centred at `start` + k·hop.

    Each frame sees the clip's own samples around it (zeros only beyond the clip's ends), so the windows
    are exactly slices of `librosa.feature.melspectrogram(signal)`.
    """
    n_fft, hop = config.n_fft, config.hop_length
    needed = (frames - 1) * hop + n_fft
    padded = np.zeros(needed, dtype=np.float32)
    first = start - n_fft // 2  # signal index of padded[0]
    lo, hi = max(first, 0), min(first + needed, len(signal))
    if hi > lo:
        padded[lo - first : hi - first] = signal[lo:hi]
    return _frames_power(np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop], config)


def _frames_power(frames: np.ndarray, config: SpecConfig) -> np.ndarray:
    """Mel power (n_mels, len(frames)) of STFT frames (frames × n_fft samples each)."""
    import scipy.fft

    n_fft, hann, basis = config.n_fft, _hann(config.n_fft), mel_basis(config)
    mel = np.empty((basis.shape[0], len(frames)), dtype=np.float32)
    windowed = np.empty((FFT_BLOCK, n_fft), dtype=np.float32)
    power = np.empty((FFT_BLOCK, n_fft // 2 + 1), dtype=np.float32)
    for start in range(0, len(frames), FFT_BLOCK):
        block = frames[start : start + FFT_BLOCK]
        count = len(block)
        np.multiply(block, hann, out=windowed[:count])
        spectrum = scipy.fft.rfft(windowed[:count], axis=-1, workers=1)
        np.square(spectrum.real, out=power[:count])
        power[:count] += np.square(spectrum.imag)
        mel[:, start : start + count] = basis @ power[:count].T
    return mel


def mel_image(window: np.ndarray, config: SpecConfig) -> np.ndarray:
    """Mel-spectrogram of one window (its own centred STFT) as an image, low frequencies at the bottom."""
    return _image(mel_power(window, config), config)


def window_images(
    signal: np.ndarray, config: SpecConfig, seconds: float | None = None, step: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """`(start_seconds, image)` of every window of `signal` (`seconds` long every `step`; the config's by
    default), framed as `config.framing` says: the one way prepare, predict, evaluate and embed cut audio."""
    seconds, step = config.windowing(seconds, step)
    if config.framing == "window":
        for start, chunk in windows(signal, config.sample_rate, seconds, step):
            yield start, mel_image(chunk, config)
        return
    rate, hop = config.sample_rate, config.hop_length
    length, stride = int(round(seconds * rate)), int(round(step * rate))
    for start in window_starts(len(signal), length, stride):
        yield start / rate, _image(clip_mel_power(signal, start, length // hop, config), config)


def log_values(image: np.ndarray) -> np.ndarray:
    """The log10(1 + 10000·P) values (float32, rows as stored) of a 16-bit `log10_1p` image."""
    return image.astype(np.float32) / np.float32(LOG_SCALE)


def _image(power: np.ndarray, config: SpecConfig) -> np.ndarray:
    if config.compression == "log10_1p":
        values = np.log10(np.float32(1) + np.float32(LOG_GAIN) * power)  # float32: float16 overflows here
        image = np.round(values * np.float32(LOG_SCALE)).clip(0, 65535).astype(np.uint16)
    else:
        image = _db_image(power, config)
    image = np.flipud(image)
    if (config.image_height, config.image_width) != (None, None):
        if config.bit_depth != 8:
            raise MerError("image_height/image_width resize 8-bit dB images only; leave them unset for log10_1p")
        image = resize(image, config.image_size)
    return np.ascontiguousarray(image)


def _db_image(power: np.ndarray, config: SpecConfig) -> np.ndarray:
    peak = power.max()
    if peak <= AMIN:  # silence: a black image rather than a flat 0 dB one
        return np.zeros(power.shape, dtype=np.uint8)
    # librosa.power_to_db(power, ref=np.max, top_db=top_db), step for step
    decibels = 10.0 * np.log10(np.maximum(AMIN, power))
    decibels -= 10.0 * np.log10(np.maximum(AMIN, peak))
    decibels = np.maximum(decibels, decibels.max() - config.top_db)
    return np.round((decibels + config.top_db) / config.top_db * 255).clip(0, 255).astype(np.uint8)
