"""Audio → musicnn's input patches, the way the original computes them (Pons & Serra 2019, musicnn package, ISC
licence): the reference path of `musicnn_tags`.

As the original's `extractor.batch_data`: `librosa.load(path, sr=16000)` (mono, soxr at high quality),
`librosa.feature.melspectrogram` over the whole clip with the settings of `data.spectrogram.musicnn_spec()` (the one
declaration of musicnn's input contract, which `prepare --spectrogram musicnn` uses too), compressed as
log10(1 + 10000·P) with no per-window normalisation, cut into 3 s patches of 187 frames. One deliberate difference:
the original casts P to float16 first, which overflows under numpy 2; here everything is float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.spectrogram import LOG_GAIN, SpecConfig, musicnn_spec
from ...errors import AudioError

RESAMPLE = "soxr_hq"  # librosa.load's default, which the original used


def patch_frames(spec: SpecConfig) -> int:
    """Frames per patch: 187 for 3 s (librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1)."""
    return spec.native_size[1]


def load_musicnn_audio(path: str | Path, spec: SpecConfig | None = None) -> np.ndarray:
    """The clip as float32 mono samples at musicnn's rate, decoded and resampled as the original does."""
    import librosa

    spec = spec or musicnn_spec()
    try:
        signal, _ = librosa.load(path, sr=spec.sample_rate, mono=True, res_type=RESAMPLE)
    except Exception as exc:  # soundfile, audioread and decoder errors all mean "cannot read this file"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: cannot decode the audio ({reason}); check the file") from exc
    return signal


def log_mel(signal: np.ndarray, spec: SpecConfig | None = None) -> np.ndarray:
    """The compressed mel power of the whole clip, float32 (n_mels, frames)."""
    import librosa

    spec = spec or musicnn_spec()
    power = librosa.feature.melspectrogram(
        y=signal, sr=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length, n_mels=spec.n_mels
    )
    return np.log10(np.float32(LOG_GAIN) * power.astype(np.float32) + np.float32(1))


def patches(mel: np.ndarray, spec: SpecConfig | None = None) -> np.ndarray:
    """Non-overlapping patches (n, 1, n_mels, patch frames) of a log-mel (n_mels, frames); the tail is dropped."""
    frames = patch_frames(spec or musicnn_spec())
    count = mel.shape[1] // frames
    cut = mel[:, : count * frames].reshape(mel.shape[0], count, frames)
    return np.ascontiguousarray(cut.transpose(1, 0, 2)[:, None])


def audio_patches(path: str | Path, spec: SpecConfig | None = None) -> np.ndarray:
    """The musicnn input of an audio file: (patches, 1, n_mels, patch frames), one per 3 s without overlap."""
    spec = spec or musicnn_spec()
    signal = load_musicnn_audio(path, spec)
    batch = patches(log_mel(signal, spec), spec)
    if not len(batch):
        seconds = len(signal) / spec.sample_rate
        raise AudioError(f"{path}: {seconds:.1f} s is shorter than one {spec.segment_seconds:.2f} s musicnn patch")
    return batch
