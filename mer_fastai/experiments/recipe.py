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
from ..bounds import quote
from ..errors import MerError
from .recipe_checks import validate
from .recipe_schema import DatasetSpec, DemoData, GanSpec, Recipe, Stage, typed_values

__all__ = ["load_recipe"]

RECIPES_PACKAGE = "mer_fastai.recipes"
MAX_NODES = 100_000  # values a recipe may hold once its aliases are expanded (the built-in ones: a few hundred)


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
        raise MerError(f"unknown recipe {quote(name)}; built-in: {', '.join(builtin_names())}, or pass a .yaml path")
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


def load_yaml(text: str, source: str) -> Any:
    """The value of YAML `text`, refused in one line naming `source` when it is not valid YAML or when it would
    hold over `MAX_NODES` values once its aliases are expanded (an alias "bomb" that grows exponentially)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        size = _expanded_size(node, {}) if node is not None else 0
        if size > MAX_NODES:
            raise MerError(
                f"{source}: holds over {MAX_NODES} values once its aliases (*name) are expanded; write the recipe "
                "out without nested aliases"
            )
        return loader.construct_document(node) if node is not None else None
    except RecursionError as exc:
        raise MerError(f"{source}: nested too deeply; write the recipe with fewer levels") from exc
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` holds with every alias expanded; each shared node is counted once per use but
    measured once (`sizes`), so measuring an exponential alias tree stays linear."""
    if id(node) not in sizes:
        children = node.value if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else []
        parts = [part for child in children for part in (child if isinstance(child, tuple) else (child,))]
        sizes[id(node)] = min(1 + sum(_expanded_size(part, sizes) for part in parts), MAX_NODES + 1)
    return sizes[id(node)]


def parse_override(text: str) -> tuple[list[str], Any]:
    """`key.sub=value` → (["key", "sub"], YAML-parsed value); an empty value (an unset shell variable) is refused:
    `null` clears a key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise MerError(f"--set {quote(text)}: expected key=value, e.g. --set epochs=5")
    if not value.strip():
        raise MerError(
            f"--set {quote(key.strip())}: the value is empty (an unset shell variable?); give a value, or write "
            f"{key.strip()}=null to clear the key"
        )
    try:
        parsed = load_yaml(value, f"--set {quote(text)}")
    except yaml.YAMLError as exc:
        raise MerError(f"--set {quote(text)}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from exc
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
            raise MerError(f"{source}: --set {'.'.join(keys)}: {quote(dotted)} is not a mapping")
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
        raw = load_yaml(text, source)
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
            raise MerError(f"{source}: missing required key {quote(name)}")
    return Recipe(**values)


def _required(cls, raw: dict, source: str, prefix: str):
    """`cls` built from `raw`, naming the first required key that is missing."""
    values = typed_values(cls, raw, source, prefix)
    for item in fields(cls):
        if item.name not in values and item.default is MISSING and item.default_factory is MISSING:
            raise MerError(f"{source}: missing required key {quote(prefix + item.name)}")
    return cls(**values)


def _mapping(raw: dict, key: str, source: str) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise MerError(f"{source}: {quote(key)} must be a mapping")
    return value


def _dataset(raw: dict, source: str, prefix: str) -> DatasetSpec:
    if not isinstance(raw, dict):
        raise MerError(f"{source}: {quote(prefix[:-1])} must be a mapping with audio, labels, ...")
    values = typed_values(DatasetSpec, raw, source, prefix)
    values["demo"] = DemoData(**typed_values(DemoData, raw.get("demo") or {}, source, f"{prefix}demo."))
    return DatasetSpec(**values)
