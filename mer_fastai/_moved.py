"""The module paths of 0.1 that moved into sub-packages in 0.2, and those moved since (`plots/`, folded into
`report/`): each still imports, for one release.

`import mer_fastai.dataset` (or `from mer_fastai.dataset import read_info`) gives the module at its new
path, with a `DeprecationWarning` naming it; an old module that was split gives one module holding the names
of all its parts (`from mer_fastai.labels import read_targets`). `mer_fastai.train` and
`mer_fastai.evaluate` are not here: they are the API functions (their modules are `mer_fastai.api.training`
and `mer_fastai.api.evaluation`; 0.1's `train.py` is `mer_fastai.training.fit`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

# old module path → the module(s) that hold its names now (several where it was split: the first is its heir)
MOVED: dict[str, str | tuple[str, ...]] = {
    "mer_fastai.archs": "mer_fastai.models.archs",
    "mer_fastai.audio": "mer_fastai.data.audio",
    "mer_fastai.baseline": (
        "mer_fastai.evaluation.baseline.classic",
        "mer_fastai.evaluation.baseline.features",
        "mer_fastai.evaluation.baseline.models",
    ),
    "mer_fastai.baseline_cv": "mer_fastai.evaluation.baseline.folds",
    "mer_fastai.callbacks": "mer_fastai.training.callbacks",
    "mer_fastai.config": "mer_fastai.training.config",
    "mer_fastai.cv": ("mer_fastai.evaluation.cv", "mer_fastai.evaluation.folds", "mer_fastai.evaluation.oof"),
    "mer_fastai.dataset": "mer_fastai.data.dataset",
    "mer_fastai.demo": "mer_fastai.experiments.demo",
    "mer_fastai.distributed": "mer_fastai.training.distributed",
    "mer_fastai.embed": (
        "mer_fastai.inference.embed",
        "mer_fastai.inference.embed_files",
        "mer_fastai.inference.embed_map",
    ),
    "mer_fastai.ensemble": "mer_fastai.evaluation.ensemble",
    "mer_fastai.executors": "mer_fastai.experiments.executors",
    "mer_fastai.export": "mer_fastai.inference.export",
    "mer_fastai.feature_cache": "mer_fastai.training.feature_cache",
    "mer_fastai.files": "mer_fastai._plumbing.files",
    "mer_fastai.html_report": ("mer_fastai.report.html.page", "mer_fastai.report.html.templating"),
    "mer_fastai.images": "mer_fastai.data.images",
    "mer_fastai.inputs": "mer_fastai.runs.inputs",
    "mer_fastai.jsonlines": "mer_fastai._plumbing.jsonlines",
    "mer_fastai.labels": (
        "mer_fastai.data.labels",
        "mer_fastai.data.labelfiles",
        "mer_fastai.data.matching",
        "mer_fastai.data.targets",
    ),
    "mer_fastai.learner": "mer_fastai.training.learner",
    "mer_fastai.melcnn": "mer_fastai.models.melcnn",
    "mer_fastai.modelfile": "mer_fastai.models.modelfile",
    "mer_fastai.modelmeta": (
        "mer_fastai.models.modelmeta",
        "mer_fastai.models.metachecks",
        "mer_fastai.models.preprocessing",
    ),
    "mer_fastai.musicnn": "mer_fastai.models.musicnn",
    "mer_fastai.plots": "mer_fastai.report",
    "mer_fastai.plots.figures": "mer_fastai.report.figures",
    "mer_fastai.plots.tables": "mer_fastai.report.tables",
    "mer_fastai.png": "mer_fastai.data.png",
    "mer_fastai.predict": (
        "mer_fastai.inference.predict",
        "mer_fastai.inference.tracks",
        "mer_fastai.inference.writing",
    ),
    "mer_fastai.prepare": (
        "mer_fastai.preparation.prepare",
        "mer_fastai.preparation.clips",
        "mer_fastai.preparation.journal",
        "mer_fastai.preparation.writing",
    ),
    "mer_fastai.progress": "mer_fastai._plumbing.progress",
    "mer_fastai.ray_executor": "mer_fastai.experiments.ray_executor",
    "mer_fastai.recipe": (
        "mer_fastai.experiments.recipe",
        "mer_fastai.experiments.recipe_schema",
        "mer_fastai.experiments.recipe_checks",
    ),
    "mer_fastai.results": "mer_fastai.report.results",
    "mer_fastai.runner": (
        "mer_fastai.experiments.runner",
        "mer_fastai.experiments.state",
        "mer_fastai.experiments.datasets",
    ),
    "mer_fastai.scores": ("mer_fastai.scoring.scores", "mer_fastai.scoring.predictions"),
    "mer_fastai.spectrogram": "mer_fastai.data.spectrogram",
    "mer_fastai.split": "mer_fastai.data.split",
    "mer_fastai.synth": "mer_fastai.data.synth",
    "mer_fastai.tensor_data": "mer_fastai.training.tensor_loaders",
    "mer_fastai.tracking": "mer_fastai.training.tracking",
    "mer_fastai.weights": "mer_fastai.models.weights",
}


LATER = "mer_fastai.plots"  # 0.2's package moved after 0.2: it imports one release longer than 0.1's paths


def removal(old: str) -> str:
    """The release an old path stops importing in."""
    return "0.4" if old == LATER or old.startswith(LATER + ".") else "0.3"


def new_paths(old: str) -> tuple[str, ...]:
    """Where an old module path (or a module inside an old package path) lives now; () if it did not move."""
    if old in MOVED:
        new = MOVED[old]
        return (new,) if isinstance(new, str) else new
    for end in (i for i in range(len(old) - 1, 0, -1) if old[i] == "."):
        heir = MOVED.get(old[:end])
        if isinstance(heir, str):  # a module inside a moved package: the same module at the new place
            return (heir + old[end:],)
    return ()


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path."""

    def __init__(self) -> None:
        self.specs: dict[str, object] = {}  # old path → the new module's own spec, which the import overwrites

    def find_spec(self, fullname: str, path, target=None):  # noqa: ANN001 (importlib's signature)
        return importlib.util.spec_from_loader(fullname, self) if new_paths(fullname) else None

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        new = new_paths(spec.name)
        where = " and ".join(new)
        message = f"{spec.name} moved to {where}; the old path goes in {removal(spec.name)}"
        warnings.warn(message, DeprecationWarning, stacklevel=3)
        modules = [importlib.import_module(name) for name in new]
        if len(modules) == 1:
            self.specs[spec.name] = modules[0].__spec__
            return modules[0]
        alias = ModuleType(spec.name, f"0.1's {spec.name}, now split into {where}.")
        for module in reversed(modules):  # the heir's names win
            alias.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
        return alias

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module was imported at its new path): give it back its own spec."""
        own = self.specs.pop(module.__spec__.name, None)
        if own is not None:
            module.__spec__ = own


def install_moved_modules() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
