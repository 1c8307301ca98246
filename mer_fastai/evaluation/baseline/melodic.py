"""Melodic and expressive features of a window: the predominant melody line, its notes, intervals and vibrato.

After Panda, Malheiro & Paiva (2018), whose melodic, texture and expressivity descriptors carried the published
4Q results. The melody line is librosa's probabilistic YIN (`librosa.pyin`, 65–1047 Hz) on the window at 16 kHz:
basic-pitch, the note model first chosen, does not install on Python 3.11 without TensorFlow (its wheel requires
`tensorflow<2.15.1` there). pYIN follows one predominant pitch, so on dense mixes it tracks whatever is loudest.

From the voiced frames (pitch in semitones) come the contour's statistics and its pitch-class histogram; the
contour is cut into notes where the pitch leaves the running note's mean by more than `NOTE_TOLERANCE` semitones
(wide enough to keep a vibrato of up to ±70 cents in one note, narrow enough to split a semitone step) or unvoices
(notes shorter than `MIN_NOTE_FRAMES` are dropped), which gives the note density, note durations
(articulation: the share of the window covered by notes, the gaps between them) and the intervals between
consecutive notes. Vibrato is measured on notes of at least `VIBRATO_SECONDS`: the strongest 4–8 Hz
modulation of the note's detrended pitch, when it is the note's strongest and the pitch swings by at least
`VIBRATO_MIN_CENTS` (sd): its rate, its extent in cents, and the share of long notes that have one.
"""

from __future__ import annotations

import numpy as np

from ...data.audio import load_audio, window_at
from ...errors import AudioError
from .features import FeatureSet, SourceRows, Windows, locate_source

MELODIC_VERSION = "melodic-pyin/1"  # change whenever `melodic_features` changes, so caches are redone
RATE, FRAME, HOP = 16000, 1024, 512  # pYIN's input: 16 kHz, 64 ms frames every 32 ms
FMIN, FMAX = 65.0, 1047.0  # C2 to C6
MIN_NOTE_FRAMES = 3  # ~0.1 s
NOTE_TOLERANCE = 0.8  # semitones from the running note's mean
VIBRATO_SECONDS = 0.25
VIBRATO_BAND = (4.0, 8.0)  # Hz
VIBRATO_MIN_CENTS = 10.0
STEP, LEAP = 2, 5  # semitones: an interval up to STEP is a step, from LEAP on a leap

MELODIC_NAMES = (
    "voiced_fraction", "pitch_mean", "pitch_std", "pitch_range", "pitch_slope_std",
    *(f"pitch_class{i}" for i in range(12)), "pitch_class_entropy",
    "note_density", "note_duration_mean", "note_duration_std", "note_coverage", "gap_mean",
    "interval_mean", "interval_abs_mean", "interval_std", "step_fraction", "leap_fraction", "repeat_fraction",
    "vibrato_rate", "vibrato_extent", "vibrato_fraction",
)  # fmt: skip


def melodic_features(window: np.ndarray) -> np.ndarray:
    """The melodic and expressive vector (see `MELODIC_NAMES`) of a 16 kHz mono window."""
    import librosa

    f0, voiced, _ = librosa.pyin(window, fmin=FMIN, fmax=FMAX, sr=RATE, frame_length=FRAME, hop_length=HOP)
    voiced = voiced & np.isfinite(f0)
    frame_seconds, seconds = HOP / RATE, max(len(window) / RATE, 1e-9)
    pitch = np.where(voiced, librosa.hz_to_midi(np.where(voiced, f0, FMIN)), np.nan)
    values = pitch[voiced]
    contour = _contour(values, voiced, pitch)
    notes = _notes(pitch)
    durations = np.array([len(n) for n in notes]) * frame_seconds
    heights = np.array([np.median(n) for n in notes])
    intervals = np.diff(heights)
    starts = np.array([start for start, _ in _spans(pitch)]) * frame_seconds
    ends = starts + np.array([length for _, length in _spans(pitch)]) * frame_seconds
    gaps = (starts[1:] - ends[:-1]) if len(starts) > 1 else np.zeros(0)
    parts = [
        contour,
        [len(notes) / seconds, _mean(durations), _std(durations), durations.sum() / seconds, _mean(gaps)],
        [_mean(intervals), _mean(np.abs(intervals)), _std(intervals)],
        [_share(np.abs(intervals) <= STEP, intervals), _share(np.abs(intervals) >= LEAP, intervals)],
        [_share(np.abs(intervals) < 0.5, intervals)],
        _vibrato(notes, frame_seconds),
    ]
    return np.nan_to_num(np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])).astype(np.float32)


def _contour(values: np.ndarray, voiced: np.ndarray, pitch: np.ndarray) -> list[float]:
    """Voiced fraction, pitch mean, sd, 5–95 % range, sd of the frame-to-frame slope, the 12 pitch-class shares
    and their entropy (bits)."""
    if not len(values):
        return [0.0] * 5 + [0.0] * 12 + [0.0]
    classes = np.bincount(np.round(values).astype(int) % 12, minlength=12) / len(values)
    nonzero = classes[classes > 0]
    slope = np.diff(pitch)
    slope = slope[np.isfinite(slope)]
    spread = float(np.percentile(values, 95) - np.percentile(values, 5))
    head = [voiced.mean(), values.mean(), values.std(), spread, _std(slope)]
    return [*head, *classes.tolist(), float(-(nonzero * np.log2(nonzero)).sum())]


def _spans(pitch: np.ndarray) -> list[tuple[int, int]]:
    """(first frame, frames) of every note: a run of voiced frames within `NOTE_TOLERANCE` of its running mean."""
    spans, start = [], None
    for index, value in enumerate([*pitch.tolist(), np.nan]):
        if start is not None and (np.isnan(value) or abs(value - np.mean(pitch[start:index])) > NOTE_TOLERANCE):
            if index - start >= MIN_NOTE_FRAMES:
                spans.append((start, index - start))
            start = None
        if start is None and not np.isnan(value):
            start = index
    return spans


def _notes(pitch: np.ndarray) -> list[np.ndarray]:
    """Each note's pitch frames."""
    return [pitch[start : start + length] for start, length in _spans(pitch)]


def _vibrato(notes: list[np.ndarray], frame_seconds: float) -> list[float]:
    """Mean rate (Hz) and extent (cents, sd of the detrended pitch) of the notes whose strongest modulation lies
    in `VIBRATO_BAND`, and the share of long notes that have one."""
    long = [n for n in notes if len(n) * frame_seconds >= VIBRATO_SECONDS]
    rates, extents = [], []
    for note in long:
        cents = 100 * (note - np.polyval(np.polyfit(np.arange(len(note)), note, 1), np.arange(len(note))))
        power = np.abs(np.fft.rfft(cents * np.hanning(len(cents)))) ** 2
        freqs = np.fft.rfftfreq(len(cents), frame_seconds)
        peak = int(np.argmax(power[1:]) + 1) if len(power) > 1 else 0
        if peak and VIBRATO_BAND[0] <= freqs[peak] <= VIBRATO_BAND[1] and cents.std() >= VIBRATO_MIN_CENTS:
            rates.append(freqs[peak])
            extents.append(cents.std())
    return [_mean(np.array(rates)), _mean(np.array(extents)), len(rates) / len(long) if long else 0.0]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _std(values: np.ndarray) -> float:
    return float(values.std()) if len(values) else 0.0


def _share(hits: np.ndarray, of: np.ndarray) -> float:
    return float(hits.mean()) if len(of) else 0.0


def melodic_source(source: str, starts: Windows, spec_values: dict, audio_dir: str | None) -> SourceRows:
    """Melodic features of every listed window (image, start) of one file, decoding it once at 16 kHz; a file
    that cannot be decoded gives no rows and the reason."""
    try:
        signal = load_audio(locate_source(source, audio_dir), RATE)
    except AudioError as exc:
        return {}, str(exc)
    seconds = float(spec_values["segment_seconds"])
    return {image: melodic_features(window_at(signal, RATE, seconds, start)) for image, start in starts}, None


MELODIC = FeatureSet("melodic", MELODIC_VERSION, MELODIC_NAMES, melodic_source)
