"""Audio decoding and fixed-length windowing."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import AudioError, MerError

AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff"})


def find_audio_files(*roots: str | Path) -> list[Path]:
    """Audio files given directly or found recursively under folders, sorted for reproducibility."""
    found: list[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(p for p in sorted(root.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            raise MerError(f"{root}: no such file or folder; check the path")
    return found


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode any supported file to a mono float32 signal at `sample_rate`."""
    path = Path(path)
    try:
        signal = _decode(path, sample_rate)
    except Exception as exc:  # decoders raise many unrelated types
        reason = _reason(exc)
        raise AudioError(f"{path}: cannot decode audio ({reason}); re-encode or remove the file") from exc
    if signal.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples; remove it")
    if not np.isfinite(signal).all():
        raise AudioError(f"{path}: the decoded audio holds NaN or infinite samples; re-encode the file")
    return signal.astype(np.float32, copy=False)


def _decode(path: Path, sample_rate: int) -> np.ndarray:
    """`librosa.load(path, sr=sample_rate, mono=True)`, sample for sample, without its per-call overhead.

    Formats libsndfile reads (wav, flac, ogg, mp3, aiff, ...) are read by soundfile as float32, averaged
    to mono and resampled with soxr's high quality, exactly as librosa does; anything else goes to
    librosa.load itself (its audioread fallback).
    """
    import soundfile

    try:
        with soundfile.SoundFile(path) as audio:
            native = audio.samplerate
            frames = audio.read(dtype="float32", always_2d=True)
    except soundfile.SoundFileRuntimeError:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return librosa.load(path, sr=sample_rate, mono=True)[0]
    signal = frames[:, 0] if frames.shape[1] == 1 else np.mean(frames.T, axis=0)
    if native == sample_rate or signal.size == 0:
        return signal
    import soxr

    resampled = soxr.resample(signal, native, sample_rate, quality="soxr_hq")
    length = int(np.ceil(signal.size * (float(sample_rate) / native)))  # librosa.resample's length, rounded alike
    return resampled[:length] if resampled.size >= length else np.pad(resampled, (0, length - resampled.size))


def _reason(exc: BaseException) -> str:
    """The most telling message in an exception chain (audioread's fallback error says nothing)."""
    seen = exc
    while seen is not None:
        text = str(seen).strip()
        if text:
            return text.splitlines()[0]
        seen = seen.__context__
    return type(exc).__name__


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of fixed windows; a last partial window is kept if at least half a window long.

    A signal shorter than one window still yields one (zero-padded) window.
    """
    if window <= 0 or hop <= 0:
        raise MerError("window and hop lengths must be positive; check --segment-seconds and --hop")
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    next_start = starts[-1] + hop
    if next_start < n_samples and n_samples - next_start >= window / 2:
        starts.append(next_start)
    return starts


def windows(
    signal: np.ndarray, sample_rate: int, seconds: float, hop_seconds: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield `(start_seconds, window)` pairs; every window has exactly `seconds` of samples."""
    window = int(round(seconds * sample_rate))
    hop = int(round((hop_seconds or seconds) * sample_rate))
    for start in window_starts(len(signal), window, hop):
        chunk = signal[start : start + window]
        if len(chunk) < window:
            chunk = np.pad(chunk, (0, window - len(chunk)))
        yield start / sample_rate, chunk
