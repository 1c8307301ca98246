"""Near-duplicate fingerprints: re-encoded copies of one recording match, other recordings do not."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soxr

from mer_fastai.data.fingerprint import CELLS, MATCH_SHARE, disagreement, fingerprint, joined_groups, matching_pairs
from mer_fastai.data.synth import DEMO_CLASSES, synthesize_clip

RATE = 44100


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    """Three 6 s synthetic clips of each demo class at 44.1 kHz."""
    rng = np.random.default_rng(3)
    return {name: [synthesize_clip(cues, 6.0, RATE, rng) for _ in range(3)] for name, cues in DEMO_CLASSES.items()}


def at_22k(signal: np.ndarray, rate: int = RATE) -> str:
    """The fingerprint prepare computes: of the signal decoded at 22.05 kHz."""
    return fingerprint(soxr.resample(signal, rate, 22050).astype(np.float32), 22050)


def copies(signal: np.ndarray) -> dict[str, np.ndarray]:
    """The same recording: resampled to 22.05 kHz and back; mp3-like (low-passed at 5 kHz, noise) and quieter."""
    b, a = scipy.signal.butter(6, 5000 / (RATE / 2))
    noise = np.random.default_rng(1).normal(0, 0.003, len(signal))
    return {
        "22.05 kHz": soxr.resample(soxr.resample(signal, RATE, 22050), 22050, RATE),
        "mp3-like": scipy.signal.lfilter(b, a, signal) * 0.6 + noise,
        "louder": signal * 1.5,
    }


def test_copies_of_a_recording_match_and_other_clips_of_its_class_do_not(clips):
    for name, signals in clips.items():
        original = at_22k(signals[0])
        assert len(original) == CELLS // 2
        for how, copy in copies(signals[0]).items():
            assert disagreement(original, at_22k(copy)) <= MATCH_SHARE / 2, (name, how)
        for other in signals[1:]:
            assert disagreement(original, at_22k(other)) > MATCH_SHARE * 2, name


def test_matching_pairs_finds_the_copies_among_many(clips):
    prints = {f"{name}/{i}": at_22k(signal) for name, signals in clips.items() for i, signal in enumerate(signals)}
    prints["sad/0 again"] = at_22k(copies(clips["sad"][0])["mp3-like"])
    prints["old"] = ""  # an older manifest's clip: matches nothing
    assert [(a, b) for a, b, _ in matching_pairs(prints)] == [("sad/0", "sad/0 again")]


def test_joined_groups_take_the_smallest_name_and_join_transitively():
    groups = {"a": "artist2", "b": "artist1", "c": "c", "d": "d", "e": "artist2"}
    joined = joined_groups(groups, [("a", "c", 0), ("c", "b", 3)])
    assert joined == {"a": "artist1", "b": "artist1", "c": "artist1", "d": "d", "e": "artist1"}


def test_silence_and_very_short_signals_still_give_a_fingerprint():
    assert len(fingerprint(np.zeros(100, dtype=np.float32), 22050)) == CELLS // 2
