"""mer-fastai: music emotion recognition with fastai transfer learning.

The public API, imported lazily so that `import mer_fastai` stays fast and pulls in fastai only when a
training function is used. The package's sub-packages follow the pipeline (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._moved import install_moved_modules
from ._version import __version__

_API = {
    "SpecConfig": "data.spectrogram",
    "open_dataset": "tasks.opened",
    "Dataset": "tasks.opened",
    "prepare_dataset": "preparation.prepare",
    "PrepareResult": "preparation.prepare",
    "read_labels": "data.labels",
    "load_audio": "data.audio",
    "load_dataloaders": "training.loaders",
    "ARCHS": "models.archs",
    "get_arch": "models.archs",
    "TrainConfig": "training.config",
    "TrainResult": "training.fit",
    "find_lr": "api.training",
    "train": "api.training",
    "load_recipe": "experiments.recipe",
    "run_recipe": "experiments.runner",
    "run_cv": "api.training",
    "CVResult": "evaluation.cv",
    "load_results": "report.results",
    "Predictor": "inference.predict",
    "evaluate": "api.evaluation",
    "export_model": "inference.export",
    "ensemble_models": "evaluation.ensemble",
    "run_baseline": "evaluation.baseline.classic",
    "train_gan": "gan.train",
    "generate_images": "gan.generate",
    "write_report": "report.html.page",
    "MerError": "errors",
    "musicnn_tags": "models.musicnn.tags",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mer_fastai' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


install_moved_modules()
