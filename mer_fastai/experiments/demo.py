"""The built-in demo: synthesise emotion-cue music, prepare it and train a small model end to end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._plumbing.progress import console
from ..data.spectrogram import SpecConfig
from ..data.synth import MOOD_CUES, RATINGS_FILE, VOTES_FILE, make_mood_set, make_study_style_set
from ..errors import MerError
from ..preparation.prepare import PrepareResult, prepare_dataset
from ..training.fit import TrainConfig, TrainResult, train

DEMO_SPEC = SpecConfig(segment_seconds=3.0, n_mels=64, hop_length=256)
DEMO_TARGETS = ["valence", "energy"]  # `demo --task regression`: the circumplex's two axes
DEMO_TASKS = ("classification", "regression", "multilabel")


@dataclass
class DemoResult:
    audio_dir: Path
    data: PrepareResult
    run: TrainResult


def demo_audio(
    folder: str | Path, clips_per_class: int = 20, seconds: float = 6.0, seed: int = 0, moods: bool = False
) -> tuple[Path, Path]:
    """The demo's synthetic study-style set, or with `moods` its mood set of as many clips (`synth.make_mood_set`),
    made once and reused afterwards: (audio dir, ratings or votes file)."""
    folder = Path(folder)
    audio_dir, labels = folder / "audio", folder / (VOTES_FILE if moods else RATINGS_FILE)
    if labels.exists() and len(list(audio_dir.glob("*.wav"))) == 5 * clips_per_class:
        return audio_dir, labels
    if moods:
        return make_mood_set(folder, clips=5 * clips_per_class, seconds=seconds, seed=seed)
    return make_study_style_set(folder, clips_per_class=clips_per_class, seconds=seconds, seed=seed)


def run_demo(
    out: str | Path = "demo-output",
    arch: str = "alexnet",
    epochs: int = 12,
    size: int = 128,
    clips_per_class: int = 20,
    weights: str = "none",
    task: str = "classification",
) -> DemoResult:
    """Synthesise the study's 5 emotions, prepare 3 s spectrograms, find the LR, train `arch`, report.

    `task` "regression" learns the ratings file's continuous valence and energy (drawn around each emotion's
    cue-driven values, `synth.STUDY_RATINGS`) instead of the emotion classes; the run folder then holds the
    predicted-vs-true scatters and the circumplex plot. `task` "multilabel" learns the moods of clips of random
    tempo, mode and loudness from their listeners' vote shares (`synth.make_mood_set`, read as `prepare --task
    multilabel --threshold 0.5` reads them); the run folder then holds the per-mood chart `per_label.png`.
    """
    if task not in DEMO_TASKS:
        raise MerError(f"--task {task}: the demo shows {', '.join(DEMO_TASKS)}; choose one of them")
    out = Path(out)
    check_demo_out(out)
    console.rule("[bold]1/3 synthesising demo music")
    audio_dir, labels = _demo_set(out, task, clips_per_class)
    console.rule("[bold]2/3 preparing mel-spectrograms")
    targets = {"regression": DEMO_TARGETS, "multilabel": list(MOOD_CUES)}.get(task)
    feature, suffix = (None, f"-{task}") if targets else ("emotions", "")  # one data set and run per task
    id_column = "clip" if task == "multilabel" else None  # the ratings file's ids are its `number` column
    data = prepare_dataset(audio_dir, out / f"data{suffix}", feature, labels, spec=DEMO_SPEC, valid_pct=0.25,
                           task=task, targets=targets, id_column=id_column)  # fmt: skip
    console.rule(f"[bold]3/3 training {arch} (whole mode, {epochs} epochs, LR from lr_find)")
    config = TrainConfig(arch=arch, mode="whole", epochs=epochs, bs=16, size=size, weights=weights)
    run = train(out / f"data{suffix}", config, out / f"run{suffix}")
    if targets:
        plots = ", ".join(sorted(p.name for p in run.run_dir.glob("*.png") if p.name != "curves.png"))
        console.print(f"plots: {plots} in [bold]{run.run_dir}")
    return DemoResult(audio_dir, data, run)


def demo_entries() -> tuple[str, ...]:
    """The names the demo writes in its --out folder, for every task."""
    suffixes = ["", *(f"-{task}" for task in DEMO_TASKS[1:])]
    return ("demo-audio", "demo-moods", *(f"{kind}{suffix}" for kind in ("data", "run") for suffix in suffixes))


def check_demo_out(out: Path) -> None:
    """The demo writes its audio, data sets and runs into `out`: a file, or a folder holding anything else (the
    user's audio, data or runs) is refused in one line before anything is written."""
    if out.exists() and not out.is_dir():
        raise MerError(f"--out {out}: is a file; give the demo a new or empty folder")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in demo_entries() and not p.name.startswith("."))
    if foreign:
        raise MerError(
            f"--out {out}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which the demo did not "
            f"write; the demo writes {', '.join(demo_entries()[:4])}, ... there: choose a new or empty folder"
        )


def _demo_set(out: Path, task: str, clips_per_class: int) -> tuple[Path, Path]:
    """The task's synthetic audio and labels file (`demo_audio`), announced: (audio dir, labels file)."""
    moods = task == "multilabel"
    audio_dir, labels = demo_audio(out / ("demo-moods" if moods else "demo-audio"), clips_per_class, moods=moods)
    what = "mood vote shares in {} (one column per mood)" if moods else "ratings in {} (the study's format)"
    console.print(f"{5 * clips_per_class} clips in {audio_dir}, {what.format(labels)}")
    return audio_dir, labels
