"""mer-fastai: music emotion recognition with fastai transfer learning.

The public API is imported lazily, so `import mer_fastai` stays fast and pulls in fastai only when
a training function is used.
"""

from __future__ import annotations

import importlib
import sys
import types
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
    "TrainConfig": "config",
    "TrainResult": "train",
    "find_lr": "train",
    "train": "train",
    "load_recipe": "recipe",
    "run_recipe": "runner",
    "run_cv": "cv",
    "CVResult": "cv",
    "load_results": "results",
    "Predictor": "predict",
    "evaluate": "evaluate",
    "export_model": "export",
    "ensemble_models": "ensemble",
    "run_baseline": "baseline",
    "train_gan": "gan",
    "generate_images": "gan",
    "write_report": "html_report",
    "MerError": "errors",
    "musicnn_tags": "musicnn.tags",
}
__all__ = ["__version__", *_API]
# API names that are also submodule names: `mer_fastai.train` is the function, never the module
_SHADOWED = frozenset(name for name, module in _API.items() if name == module)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mer_fastai' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)


class _Package(types.ModuleType):
    """The package: importing the submodule `mer_fastai.train` does not hide the function `train`.

    Python binds every imported submodule as an attribute of its package; for the names in `_SHADOWED`
    that binding is skipped, so `__getattr__` resolves them to the API object in any import order. The
    submodules stay importable as usual (`from mer_fastai.train import TrainConfig`,
    `importlib.import_module("mer_fastai.train")`).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
