"""The built-in demo: synthesise emotion-cue music, prepare it and train a small model end to end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .prepare import PrepareResult, prepare_dataset
from .progress import console
from .spectrogram import SpecConfig
from .synth import make_demo_audio
from .train import TrainConfig, TrainResult, train

DEMO_SPEC = SpecConfig(segment_seconds=3.0, n_mels=64, hop_length=256)


@dataclass
class DemoResult:
    audio_dir: Path
    data: PrepareResult
    run: TrainResult


def demo_audio(out: Path, clips_per_class: int = 16, seconds: float = 6.0, seed: int = 0) -> Path:
    """The demo's synthetic audio folder (made once, reused afterwards)."""
    audio_dir = out / "audio"
    if not any(audio_dir.rglob("*.wav")):
        make_demo_audio(audio_dir, clips_per_class=clips_per_class, seconds=seconds, seed=seed)
    return audio_dir


def run_demo(
    out: str | Path = "demo-output",
    arch: str = "alexnet",
    epochs: int = 6,
    size: int = 128,
    clips_per_class: int = 16,
    weights: str = "none",
) -> DemoResult:
    """Synthesise 4 classes of music, prepare 3 s spectrograms, train `arch` in whole mode, report."""
    out = Path(out)
    console.rule("[bold]1/3 synthesising demo music")
    audio_dir = demo_audio(out, clips_per_class)
    console.print(f"{clips_per_class} clips per class in {audio_dir} (happy, angry, sad, tender)")
    console.rule("[bold]2/3 preparing mel-spectrograms")
    data = prepare_dataset(audio_dir, out / "data", "emotions", spec=DEMO_SPEC, valid_pct=0.25)
    console.rule(f"[bold]3/3 training {arch} (whole mode, {epochs} epochs)")
    config = TrainConfig(arch=arch, mode="whole", epochs=epochs, bs=16, size=size, weights=weights)
    run = train(out / "data", config, out / "run")
    return DemoResult(audio_dir, data, run)
