"""The modules of the Python API declare their public names (`__all__`), and docs/python-api.md lists them."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import mer_fastai

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def module_of(dotted: str):
    """The deepest module (not a package) that a dotted name of the docs names, or None for a package."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        return None if hasattr(module, "__path__") and module is not mer_fastai else module
    raise AssertionError(f"{dotted} names no module")


def table() -> dict[str, list[str]]:
    """The page's module table: module -> public names."""
    rows = re.findall(r"^\| `(mer_fastai\.[\w.]+)` \| (.+) \|$", PAGE.read_text(encoding="utf-8"), flags=re.M)
    return {module: re.findall(r"`(\w+)`", names) for module, names in rows}


def test_every_facade_name_is_public_in_its_module():
    missing = [
        f"{name} ({mer_fastai._API[name]})"
        for name in mer_fastai.__all__
        if name != "__version__" and name not in importlib.import_module(f"mer_fastai.{mer_fastai._API[name]}").__all__
    ]
    assert missing == []


def test_every_module_the_page_names_declares_its_public_names():
    named = set(re.findall(r"mer_fastai(?:\.\w+)+", PAGE.read_text(encoding="utf-8")))
    modules = {m for m in map(module_of, named) if m is not None}
    assert len(modules) >= 10
    for module in modules:
        assert isinstance(getattr(module, "__all__", None), list), f"{module.__name__} has no __all__"
        assert [n for n in module.__all__ if not hasattr(module, n)] == [], module.__name__


def test_the_page_lists_each_module_with_its_public_names():
    rows = table()
    assert len(rows) >= 20
    for name, names in rows.items():
        assert names == importlib.import_module(name).__all__, name
