"""The module paths of 0.1 that moved into sub-packages in 0.2: each still imports, for one release.

`import mer_fastai.predict` (or `from mer_fastai.dataset import read_info`) gives the module at its new
path, with a `DeprecationWarning` naming it. `mer_fastai.train` and `mer_fastai.evaluate` are not here:
they are the API functions (their modules are `mer_fastai.training.fit` and
`mer_fastai.evaluation.evaluator`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

# old module path → new module path (the 0.1 modules that README or users' scripts import)
MOVED = {
    "mer_fastai.archs": "mer_fastai.models.archs",
    "mer_fastai.audio": "mer_fastai.data.audio",
    "mer_fastai.baseline": "mer_fastai.evaluation.baseline.classic",
    "mer_fastai.baseline_cv": "mer_fastai.evaluation.baseline.folds",
    "mer_fastai.config": "mer_fastai.training.config",
    "mer_fastai.cv": "mer_fastai.evaluation.cv",
    "mer_fastai.dataset": "mer_fastai.data.dataset",
    "mer_fastai.embed": "mer_fastai.inference.embed",
    "mer_fastai.ensemble": "mer_fastai.evaluation.ensemble",
    "mer_fastai.export": "mer_fastai.inference.export",
    "mer_fastai.html_report": "mer_fastai.report.html.page",
    "mer_fastai.jsonlines": "mer_fastai._plumbing.jsonlines",
    "mer_fastai.labels": "mer_fastai.data.labels",
    "mer_fastai.modelfile": "mer_fastai.models.modelfile",
    "mer_fastai.modelmeta": "mer_fastai.models.modelmeta",
    "mer_fastai.musicnn": "mer_fastai.models.musicnn",
    "mer_fastai.predict": "mer_fastai.inference.predict",
    "mer_fastai.prepare": "mer_fastai.preparation.prepare",
    "mer_fastai.recipe": "mer_fastai.experiments.recipe",
    "mer_fastai.results": "mer_fastai.report.results",
    "mer_fastai.runner": "mer_fastai.experiments.runner",
    "mer_fastai.scores": "mer_fastai.scoring.scores",
    "mer_fastai.spectrogram": "mer_fastai.data.spectrogram",
    "mer_fastai.split": "mer_fastai.data.split",
    "mer_fastai.synth": "mer_fastai.data.synth",
}


def new_path(old: str) -> str | None:
    """Where an old module path (or a module inside an old package path) lives now; None if it did not move."""
    for prefix in (old, *(old[:i] for i in range(len(old)) if old[i] == ".")):
        if prefix in MOVED:
            return MOVED[prefix] + old[len(prefix) :]
    return None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path."""

    def find_spec(self, fullname: str, path, target=None):  # noqa: ANN001 (importlib's signature)
        return importlib.util.spec_from_loader(fullname, self) if new_path(fullname) else None

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        new = new_path(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in 0.3", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported at its new path."""


def install_moved_modules() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
