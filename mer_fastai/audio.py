"""Audio decoding and fixed-length windowing."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError, MerError

AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff"})
# How the supported formats begin: RIFF/RF64 (wav), fLaC, OggS (ogg, opus), FORM (aiff), ID3 (mp3 tags).
AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3")


def find_audio_files(*roots: str | Path) -> list[Path]:
    """Audio files given directly or found recursively under folders, sorted for reproducibility."""
    found: list[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            if root.suffix.lower() not in AUDIO_EXTENSIONS:
                known = " ".join(sorted(AUDIO_EXTENSIONS))
                raise MerError(f"{root}: no audio file (the name does not end in one of {known}); check the path")
            found.append(root)
        elif root.is_dir():
            found.extend(p for p in sorted(root.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            raise MerError(f"{root}: no such file or folder; check the path")
    return found


def audio_files(audio_dir: str | Path) -> list[Path]:
    """`find_audio_files(audio_dir)`, refusing a folder that holds none."""
    files = find_audio_files(audio_dir)
    if not files:
        raise MerError(f"{audio_dir}: no audio files (.mp3 .wav .flac .ogg ...) found; check the path")
    return files


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode any supported file to a mono float32 signal at `sample_rate`."""
    path = Path(path)
    try:
        signal = _decode(path, sample_rate)
    except Exception as exc:  # decoders raise many unrelated types
        reason = _what_is_wrong(path, exc)
        raise AudioError(f"{path}: cannot decode audio ({reason}); re-encode, replace or remove the file") from exc
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


def _what_is_wrong(path: Path, exc: BaseException) -> str:
    """Why a file failed to decode: empty, not audio at all, or else the decoder's own reason."""
    try:
        with path.open("rb") as handle:
            head = handle.read(12)
    except OSError as error:
        return f"cannot read the file ({error.strerror})"
    if not head:
        return "the file is empty: 0 bytes"
    mp3_frame = len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    if not (head.startswith(AUDIO_MAGIC) or mp3_frame or head[4:8] == b"ftyp"):
        return "not an audio file: no known audio format header"
    return _reason(exc)


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
        yield start / sample_rate, _cut(signal, start, window)


def window_at(signal: np.ndarray, sample_rate: int, seconds: float, start_seconds: float) -> np.ndarray:
    """The window of `seconds` that starts at `start_seconds` (e.g. a manifest row's), cut as `windows` cuts it."""
    return _cut(signal, int(round(start_seconds * sample_rate)), int(round(seconds * sample_rate)))


def _cut(signal: np.ndarray, start: int, length: int) -> np.ndarray:
    """`length` samples from `start`, zero-padded at the end where the signal is shorter."""
    chunk = signal[start : start + length]
    return chunk if len(chunk) == length else np.pad(chunk, (0, length - len(chunk)))


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be labelled, and why."""

    file: str
    reason: str
