"""Hand-crafted features of one audio window: the classic music-information-retrieval descriptors (MFCC, chroma,
spectral shape, zero-crossing rate, RMS energy, tempo and beat statistics) that `baseline` fits its estimators on
and that a hand-crafted model file (`baseline --save-model`) reads at prediction instead of a spectrogram image.

A model file that records `READS` (`ModelMeta.window_features`) is fed `window_features` of each window of the
clip decoded at its data set's sample rate (`models.windowreads`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURE_VERSION", "READS", "feature_names", "window_features"]

FEATURE_VERSION = "mir-83/2"  # change whenever `window_features` changes, so caches are redone
# what a hand-crafted model file reads (`ModelMeta.window_features`): the feature set at its version
READS = f"handcrafted@{FEATURE_VERSION}"
N_MFCC = 20
CONTRAST_BANDS = 6


def feature_names() -> list[str]:
    """Names of the columns `window_features` returns, in order."""
    names = [f"mfcc{i}_mean" for i in range(N_MFCC)] + [f"mfcc{i}_std" for i in range(N_MFCC)]
    names += [f"chroma{i}_mean" for i in range(12)]
    for name in ("centroid", "bandwidth", "rolloff", "flatness"):
        names += [f"{name}_mean", f"{name}_std"]
    names += [f"contrast{i}_mean" for i in range(CONTRAST_BANDS + 1)]
    names += [f"contrast{i}_std" for i in range(CONTRAST_BANDS + 1)]
    names += ["zcr_mean", "zcr_std", "rms_mean", "rms_std"]
    names += ["tempo_bpm", "onset_mean", "onset_std", "beats_per_second", "beat_interval_std"]
    return names


def window_features(window: np.ndarray, sample_rate: int, n_fft: int, hop_length: int) -> np.ndarray:
    """The hand-crafted feature vector of one audio window (see `feature_names`)."""
    import librosa

    magnitude = np.abs(librosa.stft(window, n_fft=n_fft, hop_length=hop_length))
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=magnitude**2, sr=sample_rate))
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
    # tuning=0: the 12 chroma bins at standard pitch, no per-window tuning estimate (noisy on short windows)
    chroma = librosa.feature.chroma_stft(S=magnitude**2, sr=sample_rate, n_fft=n_fft, tuning=0.0)
    shape = [
        librosa.feature.spectral_centroid(S=magnitude, sr=sample_rate),
        librosa.feature.spectral_bandwidth(S=magnitude, sr=sample_rate),
        librosa.feature.spectral_rolloff(S=magnitude, sr=sample_rate),
        librosa.feature.spectral_flatness(S=magnitude),
    ]
    # the top contrast band must stay below Nyquist: 200 Hz × 2^6 needs a sample rate of 12.8 kHz or more
    fmin = min(200.0, 0.99 * sample_rate / 2 ** (CONTRAST_BANDS + 1))
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sample_rate, fmin=fmin, n_bands=CONTRAST_BANDS)
    zcr = librosa.feature.zero_crossing_rate(window, frame_length=n_fft, hop_length=hop_length)
    rms = librosa.feature.rms(S=magnitude, frame_length=n_fft)
    onset = librosa.onset.onset_strength(S=mel_db, sr=sample_rate)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=sample_rate, hop_length=hop_length))[0])
    _, beats = librosa.beat.beat_track(
        onset_envelope=onset, sr=sample_rate, hop_length=hop_length, bpm=tempo, units="time"
    )
    duration = len(window) / sample_rate
    intervals = np.diff(beats)
    parts = [
        mfcc.mean(axis=1),
        mfcc.std(axis=1),
        chroma.mean(axis=1),
        *([row.mean(), row.std()] for row in (s[0] for s in shape)),
        contrast.mean(axis=1),
        contrast.std(axis=1),
        [zcr.mean(), zcr.std(), rms.mean(), rms.std()],
        [
            tempo,
            onset.mean(),
            onset.std(),
            len(beats) / duration,
            intervals.std() if len(intervals) > 1 else 0.0,
        ],
    ]
    return np.nan_to_num(np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])).astype(np.float32)
