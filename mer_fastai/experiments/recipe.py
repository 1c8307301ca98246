"""Experiment recipes: load a YAML file (built-in name or path), apply overrides, check every key's type.

What a recipe holds is declared in `recipe_schema`; the cross-field checks are `recipe_checks`.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .._plumbing.files import check_input_file
from ..errors import MerError
from .recipe_checks import validate
from .recipe_schema import DatasetSpec, DemoData, GanSpec, Recipe, Stage, typed_values

__all__ = ["load_recipe"]

RECIPES_PACKAGE = "mer_fastai.recipes"


def builtin_names() -> list[str]:
    """Names of the recipes shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files(RECIPES_PACKAGE).iterdir() if p.name.endswith(".yaml"))


def recipe_text(name_or_path: str | Path) -> tuple[str, str]:
    """(YAML text, where it came from) of a built-in name or a file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        check_input_file(path, "the recipe", f"pass a recipe .yaml file or a built-in: {', '.join(builtin_names())}")
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError as exc:
            raise MerError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from exc
    name = str(name_or_path)
    if name not in builtin_names():
        raise MerError(f"unknown recipe {name!r}; built-in: {', '.join(builtin_names())}, or pass a .yaml path")
    return (resources.files(RECIPES_PACKAGE) / f"{name}.yaml").read_text(), f"{name}.yaml"


def yaml_error(source: str, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: file, line and column, the problem, and the fix."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return (
        f"{where}: not valid YAML ({problem}); fix the recipe there (indent with spaces, quote values "
        "holding ': ' or '#')"
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """`key.sub=value` → (["key", "sub"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise MerError(f"--set {text!r}: expected key=value, e.g. --set epochs=5")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise MerError(f"--set {text!r}: the value is not valid YAML ({exc.problem})") from exc
    return key.strip().split("."), parsed


def apply_override(raw: dict, keys: list[str], value: Any, source: str) -> None:
    """Set a dotted key in the raw recipe; the parent mapping must exist (typos fail in validation)."""
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None and keys[depth] != "datasets":
            child = node[key] = {}
        if not isinstance(child, dict):
            dotted = ".".join(keys[: depth + 1])
            raise MerError(f"{source}: --set {'.'.join(keys)}: {dotted!r} is not a mapping")
        node = child
    node[keys[-1]] = value


def load_recipe(
    name_or_path: str | Path,
    overrides: list[str] | None = None,
    features: list[str] | None = None,
    archs: list[str] | None = None,
    modes: list[str] | None = None,
) -> Recipe:
    """Load, override, filter and validate a recipe; any problem is one line naming the key."""
    text, source = recipe_text(name_or_path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MerError(yaml_error(source, exc)) from exc
    if not isinstance(raw, dict):
        raise MerError(f"{source}: a recipe must be a mapping of keys to values")
    raw = copy.deepcopy(raw)
    overridden = []
    for override in overrides or []:
        keys, value = parse_override(override)
        apply_override(raw, keys, value, source)
        overridden.append(keys[0])
    recipe = _build(raw, source)
    recipe.overridden = list(dict.fromkeys(overridden))
    if archs:
        recipe.archs = list(archs)
    for stage in recipe.stages:
        if archs and stage.archs is not None:
            stage.archs = [arch for arch in stage.archs if arch in archs]
        if features:
            stage.features = list(features)
        if modes:
            stage.modes = list(modes)
    validate(recipe)
    return recipe


def _build(raw: dict, source: str) -> Recipe:
    values = typed_values(Recipe, raw, source, "")
    values["datasets"] = {
        name: _dataset(spec or {}, source, f"datasets.{name}.")
        for name, spec in _mapping(raw, "datasets", source).items()
    }
    stages = raw.get("stages") or []
    if not isinstance(stages, list):
        raise MerError(f"{source}: 'stages' must be a list of stages (name, dataset, features, modes)")
    values["stages"] = [_required(Stage, stage, source, f"stages[{i}].") for i, stage in enumerate(stages)]
    values["gan"] = GanSpec(**typed_values(GanSpec, raw.get("gan") or {}, source, "gan."))
    values["source"] = source
    for name in ("experiment", "description", "datasets", "stages", "archs"):
        if name not in values or values[name] in (None, [], {}):
            raise MerError(f"{source}: missing required key {name!r}")
    return Recipe(**values)


def _required(cls, raw: dict, source: str, prefix: str):
    """`cls` built from `raw`, naming the first required key that is missing."""
    values = typed_values(cls, raw, source, prefix)
    for item in fields(cls):
        if item.name not in values and item.default is MISSING and item.default_factory is MISSING:
            raise MerError(f"{source}: missing required key {prefix + item.name!r}")
    return cls(**values)


def _mapping(raw: dict, key: str, source: str) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise MerError(f"{source}: {key!r} must be a mapping")
    return value


def _dataset(raw: dict, source: str, prefix: str) -> DatasetSpec:
    if not isinstance(raw, dict):
        raise MerError(f"{source}: {prefix[:-1]!r} must be a mapping with audio, labels, ...")
    values = typed_values(DatasetSpec, raw, source, prefix)
    values["demo"] = DemoData(**typed_values(DemoData, raw.get("demo") or {}, source, f"{prefix}demo."))
    return DatasetSpec(**values)
