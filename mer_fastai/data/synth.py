"""Synthetic music whose classes differ in cues known to carry emotion (the built-in demo data).

Mode, tempo, register, loudness, articulation, dissonance and timbre follow the classic findings of
music-emotion research (e.g. Juslin & Laukka 2003): happy = major, fast, high, loud-ish, staccato;
angry = dissonant, fast, low, loud, bright; sad = minor, slow, low, soft, legato;
tender = major, slow, mid-high, soft, legato, dark timbre. `make_mood_set` (the multilabel demo) gives clips
of random tempo, mode and loudness the vote shares of moods that follow those cues.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._plumbing.progress import console

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "chromatic": tuple(range(12)),
}


@dataclass(frozen=True)
class Cues:
    """Musical cues of one emotion class."""

    scale: str
    bpm: float
    register: int  # MIDI note of the tonic
    loudness: float  # peak amplitude 0..1
    articulation: float  # sounding fraction of each beat: 0.3 staccato .. 1.0 legato
    dissonance: float  # 0 = triads, 1 = semitone clusters
    brightness: int  # number of harmonics


DEMO_CLASSES = {
    "happy": Cues("major", 140, 72, 0.8, 0.35, 0.0, 6),
    "angry": Cues("chromatic", 160, 45, 0.95, 0.6, 1.0, 12),
    "sad": Cues("minor", 58, 50, 0.3, 1.0, 0.0, 3),
    "tender": Cues("major", 68, 67, 0.35, 1.0, 0.0, 2),
}


def _tone(freq: float, n: int, sr: int, harmonics: int) -> np.ndarray:
    t = np.arange(n) / sr
    tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1) if freq * k < sr / 2)
    return np.asarray(tone, dtype=np.float64)


def synthesize_clip(cues: Cues, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clip: a chord progression over a melody, jittered in key, tempo and level."""
    beat = 60.0 / (cues.bpm * rng.uniform(0.9, 1.1))
    tonic = cues.register + int(rng.integers(-2, 3))
    scale = SCALES[cues.scale]
    out = np.zeros(int(seconds * sr))
    position = 0.0
    while position < seconds:
        start = int(position * sr)
        length = int(beat * cues.articulation * sr)
        degree = int(rng.integers(0, len(scale)))
        root = tonic + scale[degree]
        if rng.random() < cues.dissonance:
            chord = (root, root + 1, root + 6)
        else:
            chord = (root, tonic + scale[(degree + 2) % len(scale)], tonic + scale[(degree + 4) % len(scale)])
        notes = [*chord, root + 12] if rng.random() < 0.5 else list(chord)
        segment = sum(_tone(440.0 * 2 ** ((note - 69) / 12), length, sr, cues.brightness) for note in notes)
        attack = max(1, int(0.01 * sr))
        envelope = np.minimum(1.0, np.arange(length) / attack) * np.exp(-np.arange(length) / (0.6 * length + 1))
        end = min(len(out), start + length)
        out[start:end] += (segment * envelope)[: end - start]
        position += beat
    out += rng.normal(0, 0.005, len(out))
    out /= max(1e-9, np.abs(out).max())
    return (out * cues.loudness * rng.uniform(0.85, 1.0)).astype(np.float32)


def make_demo_audio(
    out_dir: str | Path,
    clips_per_class: int = 12,
    seconds: float = 6.0,
    sample_rate: int = 22050,
    seed: int = 0,
    classes: dict[str, Cues] | None = None,
) -> Path:
    """Write `<out_dir>/<class>/<class>_NN.wav` clips; returns `out_dir` (a class-per-folder layout)."""
    import soundfile

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    for name, cues in (classes or DEMO_CLASSES).items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(clips_per_class):
            clip = synthesize_clip(cues, seconds, sample_rate, rng)
            soundfile.write(folder / f"{name}_{index:02d}.wav", clip, sample_rate)
    return out_dir


STUDY_CLASSES = {
    "anger": DEMO_CLASSES["angry"],
    "fear": Cues("chromatic", 100, 62, 0.45, 0.25, 0.7, 5),
    "happy": DEMO_CLASSES["happy"],
    "sad": DEMO_CLASSES["sad"],
    "tender": DEMO_CLASSES["tender"],
}
# Mean ratings (1-9) each class is drawn around: valence, energy, tension.
STUDY_RATINGS = {
    "anger": (2.5, 7.5, 7.5),
    "fear": (2.8, 5.0, 8.0),
    "happy": (7.5, 6.5, 3.0),
    "sad": (3.0, 2.5, 4.0),
    "tender": (7.0, 3.0, 2.5),
}
RATINGS_COLUMNS = (
    "number",
    "valence",
    "energy",
    "tension",
    "anger",
    "fear",
    "happy",
    "sad",
    "tender",
    "TARGET",
)
RATINGS_FILE = "mean_ratings.csv"


def make_study_style_set(
    out_dir: str | Path,
    clips_per_class: int = 8,
    seconds: float = 6.0,
    sample_rate: int = 22050,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Numbered clips `audio/NNN.wav` of the study's five emotions plus a ratings file in the study's format.

    The ratings file is tab-separated like `mean_ratings_set1.csv`, so all four features (emotions,
    energy, valence, tension) come from it exactly as from the real data. Returns (audio dir, ratings file).
    """
    import soundfile

    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["\t".join(RATINGS_COLUMNS)]
    number = 0
    for name, cues in STUDY_CLASSES.items():
        for _ in range(clips_per_class):
            number += 1
            clip = synthesize_clip(cues, seconds, sample_rate, rng)
            soundfile.write(audio_dir / f"{number:03d}.wav", clip, sample_rate)
            dims = [np.clip(mean + rng.normal(0, 0.6), 1, 9) for mean in STUDY_RATINGS[name]]
            emotions = [np.clip((7.0 if other == name else 1.5) + rng.normal(0, 0.4), 1, 9) for other in STUDY_CLASSES]
            values = [f"{v:.2f}" for v in (*dims, *emotions)]
            lines.append("\t".join([f"{number:03d}", *values, name.upper()]))
    ratings = out_dir / RATINGS_FILE
    ratings.write_text("\n".join(lines) + "\n")
    return audio_dir, ratings


# `demo --task multilabel`: each clip draws its own tempo, mode and loudness, and a simulated listener panel
# chooses among moods that follow one or two of those cues, so several moods can hold for one clip.
MOOD_CUES = {  # mood: the cue values (tempo, major, loudness; each 0..1, None: any) its listeners react to
    "joyful": (None, 1.0, None),
    "energetic": (1.0, None, None),
    "tense": (None, 0.0, 1.0),
    "sad": (0.0, 0.0, None),
    "calm": (0.0, None, 0.0),
}
VOTES_FILE = "mood_votes.csv"
PANEL = 40  # listeners voting on each clip


def mood_clip_cues(tempo: float, major: bool, loudness: float) -> Cues:
    """The synthesis cues of a clip from its tempo, mode and loudness (0..1). As in the study's classes, the
    major mode sits higher and consonant, the minor lower with some clusters; louder playing is also brighter
    and more detached, as on real instruments, so it shows in a spectrogram normalised to its peak."""
    return Cues(
        scale="major" if major else "minor",
        bpm=55 + 110 * tempo,
        register=70 if major else 52,
        loudness=0.3 + 0.65 * loudness,
        articulation=1.0 - 0.6 * loudness,
        dissonance=0.0 if major else 0.5,
        brightness=2 + round(10 * loudness),
    )


def mood_appeal(tempo: float, major: bool, loudness: float) -> np.ndarray:
    """How strongly each mood of `MOOD_CUES` fits a clip: the product of its cues' closeness, in 0..1."""
    cues = (tempo, float(major), loudness)
    closeness = [
        [1 - abs(c - want) for c, want in zip(cues, wanted) if want is not None] for wanted in MOOD_CUES.values()
    ]
    return np.array([np.prod(values) for values in closeness])


def make_mood_set(
    out_dir: str | Path, clips: int = 100, seconds: float = 6.0, sample_rate: int = 22050, seed: int = 0
) -> tuple[Path, Path]:
    """Numbered clips `audio/NNN.wav` of random tempo, mode and loudness (tempo and loudness leaning to either
    end: Beta(0.5, 0.5)), and `mood_votes.csv`: per clip the share of `PANEL` simulated listeners choosing each
    mood (`clip` column, one column per mood of `MOOD_CUES`; a listener picks a mood with a probability that
    grows with its squared appeal). Returns (audio dir, votes file)."""
    import soundfile

    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = [",".join(["clip", *MOOD_CUES])]
    for number in range(1, clips + 1):
        tempo, major, loudness = rng.beta(0.5, 0.5), bool(rng.random() < 0.5), rng.beta(0.5, 0.5)
        clip = synthesize_clip(mood_clip_cues(tempo, major, loudness), seconds, sample_rate, rng)
        soundfile.write(audio_dir / f"{number:03d}.wav", clip, sample_rate)
        appeal = mood_appeal(tempo, major, loudness) ** 2 + 0.01  # a few listeners pick at random
        votes = rng.multinomial(PANEL, appeal / appeal.sum())
        lines.append(",".join([f"{number:03d}", *(f"{v / PANEL:.3f}" for v in votes)]))
    votes_file = out_dir / VOTES_FILE
    votes_file.write_text("\n".join(lines) + "\n")
    return audio_dir, votes_file


def demo_set(
    folder: str | Path,
    clips_per_class: int = 20,
    seconds: float = 6.0,
    seed: int = 0,
    moods: bool = False,
    announce: str | None = None,
) -> tuple[Path, Path]:
    """The built-in demo audio in `folder`, made once and reused afterwards: the study-style set
    (`make_study_style_set`) or, with `moods`, the mood set of as many clips (`make_mood_set`); `announce` is
    printed when it is made. Returns (audio dir, ratings or votes file); what `demo` and a recipe without
    `audio` both use."""
    folder = Path(folder)
    audio_dir, labels = folder / "audio", folder / (VOTES_FILE if moods else RATINGS_FILE)
    if labels.exists() and len(list(audio_dir.glob("*.wav"))) == len(STUDY_CLASSES) * clips_per_class:
        return audio_dir, labels
    if announce:
        console.print(announce)
    if moods:
        return make_mood_set(folder, clips=len(STUDY_CLASSES) * clips_per_class, seconds=seconds, seed=seed)
    return make_study_style_set(folder, clips_per_class=clips_per_class, seconds=seconds, seed=seed)
