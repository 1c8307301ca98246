"""The measured pieces of the benchmark; `run.py` runs each in a fresh process (`python -m benchmarks.tasks`).

Each task returns a JSON-ready dict; the process entry adds its peak resident memory (the process
itself and its largest child, e.g. a loader or `prepare` worker).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def floor(arch: str, size: int, bs: int, n_classes: int, steps: int, channels_last: bool = False) -> dict:
    """Median seconds of one training step (forward, backward, SGD step) and of one no-grad forward pass
    of the toolkit's network on random in-memory tensors of shape (bs, 3, size, size)."""
    import torch

    from mer_fastai.models.archs import get_arch
    from mer_fastai.models.modelfile import create_model

    torch.manual_seed(0)
    model = create_model(get_arch(arch), n_classes)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    images, targets = torch.randn(bs, 3, size, size), torch.randint(0, n_classes, (bs,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_func = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad()
        loss_func(model(images), targets).backward()
        optimizer.step()

    def forward() -> None:
        with torch.no_grad():
            model(images)

    model.train()
    train_step = _median_seconds(step, steps)
    model.eval()
    return {"train_step": train_step, "eval_step": _median_seconds(forward, steps)}


def _median_seconds(action, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def study(data: str, arch: str, mode: str, epochs: int, bs: int, size: int, seed: int, pretrained: bool) -> dict:
    """The study's loop (a) on a prepared data set."""
    from mer_fastai.data.dataset import read_info

    from .study_loop import run_study

    classes = read_info(data).classes
    started = time.perf_counter()
    result = run_study(data, classes, arch, mode, epochs, bs, size, seed, pretrained=pretrained)
    return {**asdict(result), "wall": time.perf_counter() - started}


def toolkit(data: str, out: str, **settings) -> dict:
    """`mer_fastai.train` (b): the whole command, from the PNG folders to the written run folder.

    `settings` are `TrainConfig` fields (arch, mode, epochs, bs, size, seed, lr, weights, cache, ...).
    """
    from mer_fastai.api.training import train
    from mer_fastai.training.fit import TrainConfig

    config = TrainConfig(**settings)
    started = time.perf_counter()
    result = train(data, config, out, show=False)
    wall = time.perf_counter() - started
    history = json.loads((Path(out) / "history.json").read_text())["history"]
    return {
        "wall": wall,
        "epoch_seconds": [row["seconds"] for row in history],
        "accuracy": result.metrics["accuracy"],
        "macro_f1": result.metrics["macro_f1"],
        "best_epoch": result.metrics["best_epoch"],
        "lr": result.lr,
        "cached_features": result.metrics["cached_features"],
    }


def prepare(audio_dir: str, out: str, workers: int) -> dict:
    """`prepare_dataset` (d) on a class-per-folder audio folder, from scratch."""
    from mer_fastai.preparation.prepare import prepare_dataset

    started = time.perf_counter()
    result = prepare_dataset(audio_dir, out, "emotions", workers=workers, overwrite=True, progress=False)
    return {"wall": time.perf_counter() - started, "clips": result.clips, "segments": result.segments}


def serial_librosa(files: list[str], out: str) -> dict:
    """The plain way (d): one process, librosa load → melspectrogram → power_to_db → PNG per 10 s window."""
    import librosa
    from PIL import Image

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    segments = 0
    for i, file in enumerate(files):
        signal, rate = librosa.load(file, sr=22050, mono=True)
        window = 10 * rate
        for start in range(0, max(1, len(signal) - window + 1), window):
            chunk = signal[start : start + window]
            power = librosa.feature.melspectrogram(y=chunk, sr=rate, n_fft=2048, hop_length=512, n_mels=128)
            decibels = librosa.power_to_db(power, ref=np.max, top_db=80.0)
            image = np.flipud(((decibels + 80.0) / 80.0 * 255).round().clip(0, 255).astype(np.uint8))
            Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{i:05d}_{start:010d}.png")
            segments += 1
    return {"wall": time.perf_counter() - started, "clips": len(files), "segments": segments}


def predict(model: str, files: list[str]) -> dict:
    """`Predictor.predict_many` (e) over audio files; loading the model is timed apart."""
    from mer_fastai.inference.predict import Predictor

    started = time.perf_counter()
    predictor = Predictor.load(model, device="cpu")
    loaded = time.perf_counter()
    predictions = predictor.predict_many(files)
    return {
        "load": loaded - started,
        "wall": time.perf_counter() - loaded,
        "tracks": len(predictions.tracks),
        "windows": sum(len(track.windows) for track in predictions.tracks),
        "skipped": len(predictions.skipped),
    }


TASKS = {f.__name__: f for f in (floor, study, toolkit, prepare, serial_librosa, predict)}


def peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its largest finished child, in MiB (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "child_peak_rss_mb": round(child, 1)}


def main(argv: list[str]) -> None:
    """`python -m benchmarks.tasks NAME KWARGS_JSON RESULT_JSON`."""
    name, kwargs, result_path = argv
    result = TASKS[name](**json.loads(kwargs))
    Path(result_path).write_text(json.dumps({**result, **peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
