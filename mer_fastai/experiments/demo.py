"""The built-in demo: synthesise emotion-cue music, prepare it and train a small model end to end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._plumbing.progress import console
from ..api.training import train
from ..data.labelsource import LabelSource
from ..data.spectrogram import SpecConfig
from ..data.synth import MOOD_CUES, demo_set
from ..errors import MerError
from ..preparation.prepare import PrepareResult, prepare_dataset
from ..runs.layout import CURVES_FILE
from ..tasks.base import DEFAULT_TASK
from ..training.fit import TrainConfig, TrainResult

DEMO_SPEC = SpecConfig(segment_seconds=3.0, n_mels=64, hop_length=256)
DEMO_TARGETS = ["valence", "energy"]  # `demo --task regression`: the circumplex's two axes


@dataclass(frozen=True)
class DemoSet:
    """What the demo of one task learns: its audio (the study-style set, or the mood set), and the labels file's
    columns `prepare` reads (the feature, or the targets; the id column where the ids are not `number`)."""

    task: str
    feature: str | None = None
    targets: list[str] | None = None
    id_column: str | None = None
    moods: bool = False

    @property
    def suffix(self) -> str:
        """The data set's and run's folder suffix: one data set and run per task (none for the first)."""
        return "" if self.feature else f"-{self.task}"

    def labels_note(self, labels: Path) -> str:
        """What the labels file holds, for the demo's first step."""
        return (
            f"mood vote shares in {labels} (one column per mood)"
            if self.moods
            else f"ratings in {labels} (the study's format)"
        )


DEMO_SETS = (
    DemoSet("classification", feature="emotions"),
    DemoSet("regression", targets=DEMO_TARGETS),
    DemoSet("multilabel", targets=list(MOOD_CUES), id_column="clip", moods=True),
)
DEMO_TASKS = tuple(demo.task for demo in DEMO_SETS)


@dataclass
class DemoResult:
    audio_dir: Path
    data: PrepareResult
    run: TrainResult


def run_demo(
    out: str | Path = "demo-output",
    arch: str = "alexnet",
    epochs: int = 12,
    size: int = 128,
    clips_per_class: int = 20,
    weights: str = "none",
    task: str = DEFAULT_TASK,
) -> DemoResult:
    """Synthesise the study's 5 emotions, prepare 3 s spectrograms, find the LR, train `arch`, report.

    `task` "regression" learns the ratings file's continuous valence and energy (drawn around each emotion's
    cue-driven values, `data.synth.STUDY_RATINGS`) instead of the emotion classes; the run folder then holds the
    predicted-vs-true scatters and the circumplex plot. `task` "multilabel" learns the moods of clips of random
    tempo, mode and loudness from their listeners' vote shares (`data.synth.make_mood_set`, read as `prepare --task
    multilabel --threshold 0.5` reads them); the run folder then holds the per-mood chart `per_label.png`.
    """
    if task not in DEMO_TASKS:
        raise MerError(f"--task {task}: the demo shows {', '.join(DEMO_TASKS)}; choose one of them")
    demo = DEMO_SETS[DEMO_TASKS.index(task)]
    out = Path(out)
    check_demo_out(out)
    console.rule("[bold]1/3 synthesising demo music")
    audio_dir, labels = demo_set(
        out / ("demo-moods" if demo.moods else "demo-audio"), clips_per_class, moods=demo.moods
    )
    console.print(f"{5 * clips_per_class} clips in {audio_dir}, " + demo.labels_note(labels))
    console.rule("[bold]2/3 preparing mel-spectrograms")
    source = LabelSource(labels, id_column=demo.id_column, targets=demo.targets)
    data = prepare_dataset(audio_dir, out / f"data{demo.suffix}", demo.feature, source, spec=DEMO_SPEC,
                           valid_pct=0.25, task=task)  # fmt: skip
    console.rule(f"[bold]3/3 training {arch} (whole mode, {epochs} epochs, LR from lr_find)")
    config = TrainConfig(arch=arch, mode="whole", epochs=epochs, bs=16, size=size, weights=weights)
    run = train(out / f"data{demo.suffix}", config, out / f"run{demo.suffix}")
    if demo.targets:
        plots = ", ".join(sorted(p.name for p in run.run_dir.glob("*.png") if p.name != CURVES_FILE))
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
