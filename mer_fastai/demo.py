"""The built-in demo: synthesise emotion-cue music, prepare it and train a small model end to end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .prepare import PrepareResult, prepare_dataset
from .progress import console
from .spectrogram import SpecConfig
from .synth import RATINGS_FILE, make_study_style_set
from .train import TrainConfig, TrainResult, train

DEMO_SPEC = SpecConfig(segment_seconds=3.0, n_mels=64, hop_length=256)


@dataclass
class DemoResult:
    audio_dir: Path
    data: PrepareResult
    run: TrainResult


def demo_audio(folder: str | Path, clips_per_class: int = 20, seconds: float = 6.0, seed: int = 0) -> tuple[Path, Path]:
    """The demo's synthetic study-style set (made once, reused afterwards): (audio dir, ratings file)."""
    folder = Path(folder)
    audio_dir, ratings = folder / "audio", folder / RATINGS_FILE
    if ratings.exists() and len(list(audio_dir.glob("*.wav"))) == 5 * clips_per_class:
        return audio_dir, ratings
    return make_study_style_set(folder, clips_per_class=clips_per_class, seconds=seconds, seed=seed)


def run_demo(
    out: str | Path = "demo-output",
    arch: str = "alexnet",
    epochs: int = 12,
    size: int = 128,
    clips_per_class: int = 20,
    weights: str = "none",
) -> DemoResult:
    """Synthesise the study's 5 emotions, prepare 3 s spectrograms, find the LR, train `arch`, report."""
    out = Path(out)
    console.rule("[bold]1/3 synthesising demo music")
    audio_dir, ratings = demo_audio(out / "demo-audio", clips_per_class)
    console.print(f"{5 * clips_per_class} clips in {audio_dir}, ratings in {ratings} (the study's format)")
    console.rule("[bold]2/3 preparing mel-spectrograms")
    data = prepare_dataset(audio_dir, out / "data", "emotions", ratings, spec=DEMO_SPEC, valid_pct=0.25)
    console.rule(f"[bold]3/3 training {arch} (whole mode, {epochs} epochs, LR from lr_find)")
    config = TrainConfig(arch=arch, mode="whole", epochs=epochs, bs=16, size=size, weights=weights)
    run = train(out / "data", config, out / "run")
    return DemoResult(audio_dir, data, run)
