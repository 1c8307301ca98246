"""The public API: every name in `mer_fastai.__all__` is the documented object, whatever the import order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mer_fastai._moved import MOVED

CHECK = """
import importlib, sys, types
import mer_fastai
wrong = []
for name in mer_fastai.__all__:
    value = getattr(mer_fastai, name)
    if name == "__version__":
        continue
    expected = getattr(importlib.import_module(f"mer_fastai.{mer_fastai._API[name]}"), name)
    if value is not expected or isinstance(value, types.ModuleType):
        wrong.append(f"{name}={value!r}")
print("wrong:", wrong)
"""
ORDERS = {
    "README line": "from mer_fastai import TrainConfig, train, evaluate\nimport mer_fastai",
    "submodules first": "import mer_fastai.training.fit, mer_fastai.evaluation.evaluator\nfrom mer_fastai import train",
    "old module paths first": "import mer_fastai.predict, mer_fastai.cv\nfrom mer_fastai import train",
    "from-import of the submodules": "from mer_fastai.training.fit import train\nimport mer_fastai",
}


@pytest.mark.parametrize("order", ORDERS)
def test_every_public_name_is_the_documented_object(order):
    code = f"import types\n{ORDERS[order]}\nassert not isinstance(train, types.ModuleType)\n{CHECK}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "wrong: []"


def test_the_submodules_stay_importable():
    import importlib

    import mer_fastai

    module = importlib.import_module("mer_fastai.api.training")  # the loop is `training.fit.train`
    assert module.train is mer_fastai.train and module.run_cv is mer_fastai.run_cv
    assert importlib.import_module("mer_fastai.training.fit").TrainConfig is mer_fastai.TrainConfig
    assert importlib.import_module("mer_fastai.api.evaluation").evaluate is mer_fastai.evaluate  # the loop: evaluator
    assert not isinstance(mer_fastai.__dict__.get("train"), type(module))  # no submodule shadows the function


def test_no_api_name_is_also_a_module_name():
    import mer_fastai

    package = Path(mer_fastai.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if p.is_dir()}
    assert sorted(set(mer_fastai.__all__) & modules) == []
    assert type(mer_fastai).__name__ == "module"  # a plain module: no class swap


def test_the_old_module_paths_still_import():
    code = (
        "import importlib, warnings\n"
        "from mer_fastai._moved import MOVED\n"
        "for old, new in MOVED.items():\n"
        "    parts = (new,) if isinstance(new, str) else new\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    heirs = [importlib.import_module(name) for name in parts]\n"
        "    if len(heirs) == 1:\n"
        "        assert module is heirs[0] and module.__spec__.name == parts[0], old\n"
        "    for heir in heirs:  # every public name of every part, the heir's where two parts share one\n"
        "        for name in (n for n in vars(heir) if not n.startswith('_')):\n"
        "            assert hasattr(module, name), (old, name)\n"
        "    for name in (n for n in vars(heirs[0]) if not n.startswith('_')):\n"
        "        assert getattr(module, name) is getattr(heirs[0], name), (old, name)\n"
        "    assert any(parts[0] in str(w.message) for w in caught), (old, [str(w.message) for w in caught])\n"
        "print(len(MOVED))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(len(MOVED))


def test_split_modules_keep_their_old_names():
    code = (
        "from mer_fastai.labels import read_targets, read_labels, clip_id\n"
        "from mer_fastai.predict import Predictor, TrackPrediction\n"
        "from mer_fastai.cv import run_cv, plan_folds\n"
        "import mer_fastai.musicnn.tags as tags\n"
        "print(read_targets.__module__, TrackPrediction.__module__, plan_folds.__module__, tags.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "mer_fastai.data.targets",
        "mer_fastai.inference.tracks",
        "mer_fastai.evaluation.folds",
        "mer_fastai.models.musicnn.tags",
    ]


def test_a_documented_old_import_line_works():
    code = (
        "from mer_fastai.predict import Predictor\nfrom mer_fastai.scores import aggregate\nprint(Predictor.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mer_fastai.inference.predict"
