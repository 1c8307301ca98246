"""mer-fastai: music emotion recognition with fastai transfer learning.

The public API is imported lazily, so `import mer_fastai` stays fast and pulls in fastai only when
a training function is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "SpecConfig": "spectrogram",
    "prepare_dataset": "prepare",
    "PrepareResult": "prepare",
    "read_labels": "labels",
    "load_audio": "audio",
    "load_dataloaders": "data",
    "ARCHS": "archs",
    "get_arch": "archs",
    "TrainConfig": "train",
    "TrainResult": "train",
    "find_lr": "train",
    "train": "train",
    "load_recipe": "recipe",
    "run_recipe": "runner",
    "load_results": "results",
    "Predictor": "predict",
    "evaluate": "evaluate",
    "export_model": "export",
    "run_baseline": "baseline",
    "train_gan": "gan",
    "generate_images": "gan",
    "MerError": "errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mer_fastai' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
