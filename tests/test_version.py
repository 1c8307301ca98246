"""The version is written once (`mer_fastai/_version.py`) and every module that records it reads it from there."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import mer_fastai
from mer_fastai import _version

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mer_fastai"


def test_one_version_everywhere():
    assert mer_fastai.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", _version.__version__)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "mer_fastai._version.__version__"' in pyproject
    assert not re.search(r'(?m)^version\s*=\s*"', pyproject)  # no second literal for the metadata
    assert importlib.metadata.version("mer-fastai") == _version.__version__  # what pip installed


def test_inner_modules_take_the_version_from_its_module():
    """No module reads `__version__` from the facade (`from .. import __version__`)."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            if "__version__" in names and node.module != "_version":
                wrong.append(str(path.relative_to(ROOT)))
    assert wrong == []


def test_the_version_module_is_light():
    code = "import sys, mer_fastai._version as v; print(v.__version__, 'torch' in sys.modules, 'fastai' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [_version.__version__, "False", "False"]
