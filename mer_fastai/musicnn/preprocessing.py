"""musicnn's input contract (Pons & Serra 2019, musicnn package, ISC licence) and audio → log-mel patches.

As the original's `extractor.batch_data`: `librosa.load(path, sr=16000)` (mono, soxr at high quality),
`librosa.feature.melspectrogram` with a 512-point FFT, hop 256 and 96 Slaney mel bands (librosa's defaults:
centred frames, 0 Hz to Nyquist, power 2), compressed as log10(1 + 10000·P) with no per-window normalisation,
cut into 3 s patches of 187 frames. One deliberate difference: the original casts P to float16 first, which
overflows under numpy 2; here everything is float32.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError, MerError


@dataclass(frozen=True)
class MusicnnInput:
    """Everything that turns audio into musicnn's input; `to_dict`/`from_dict` let it travel in a model file."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    patch_frames: int = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
    compression: str = "log10_1p"  # log10(1 + log_gain · P)
    log_gain: float = 10000.0
    resample: str = "soxr_hq"

    def __post_init__(self) -> None:
        if self.compression != "log10_1p":
            raise MerError(f"unknown musicnn compression {self.compression!r}; musicnn reads 'log10_1p'")

    @property
    def patch_seconds(self) -> float:
        return self.patch_frames * self.hop_length / self.sample_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "musicnn input settings") -> MusicnnInput:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MerError(f"{source}: unknown musicnn input setting(s) {', '.join(unknown)}; known: {sorted(known)}")
        return cls(**values)


MUSICNN_INPUT = MusicnnInput()


def load_audio(path: str | Path, contract: MusicnnInput = MUSICNN_INPUT) -> np.ndarray:
    """The clip as float32 mono samples at the contract's rate, decoded and resampled as the original does."""
    import librosa

    try:
        signal, _ = librosa.load(path, sr=contract.sample_rate, mono=True, res_type=contract.resample)
    except Exception as exc:  # soundfile, audioread and decoder errors all mean "cannot read this file"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: cannot decode the audio ({reason}); check the file") from exc
    return signal


def log_mel(signal: np.ndarray, contract: MusicnnInput = MUSICNN_INPUT) -> np.ndarray:
    """The compressed mel power of the whole clip, float32 (n_mels, frames)."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=signal, sr=contract.sample_rate, n_fft=contract.n_fft, hop_length=contract.hop_length, n_mels=contract.n_mels
    )
    return np.log10(np.float32(contract.log_gain) * power.astype(np.float32) + np.float32(1))


def patches(mel: np.ndarray, contract: MusicnnInput = MUSICNN_INPUT) -> np.ndarray:
    """Non-overlapping patches (n, 1, n_mels, patch_frames) of a log-mel (n_mels, frames); the tail is dropped."""
    count = mel.shape[1] // contract.patch_frames
    cut = mel[:, : count * contract.patch_frames].reshape(mel.shape[0], count, contract.patch_frames)
    return np.ascontiguousarray(cut.transpose(1, 0, 2)[:, None])


def audio_patches(path: str | Path, contract: MusicnnInput = MUSICNN_INPUT) -> np.ndarray:
    """The musicnn input of an audio file: (patches, 1, n_mels, patch_frames), one per 3 s without overlap."""
    signal = load_audio(path, contract)
    batch = patches(log_mel(signal, contract), contract)
    if not len(batch):
        seconds = len(signal) / contract.sample_rate
        raise AudioError(f"{path}: {seconds:.1f} s is shorter than one {contract.patch_seconds:.2f} s musicnn patch")
    return batch
