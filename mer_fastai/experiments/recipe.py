"""Experiment recipes: load a YAML file (built-in name or path), apply overrides, validate every key."""

from __future__ import annotations

import copy
import difflib
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from importlib import resources
from inspect import signature
from pathlib import Path
from typing import Any

import yaml

from .._plumbing.files import check_component
from ..choices import GAN_BACKENDS, MODES, TASK_MONITORS, TASKS
from ..data.labels import FEATURES
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from ..models.archs import get_arch
from ..preparation.prepare import prepare_dataset, task_feature
from ..training.config import TrainConfig, recipe_fields

RECIPES_PACKAGE = "mer_fastai.recipes"
DEMO_KEYS = ("epochs", "bs", "size", "lr", "weights")  # the settings `demo_settings` may change
NAME_FIX = "use letters, digits, '-', '_' or '.' (names become file and folder names)"

# The training settings a recipe sets at its top level: TrainConfig's recipe fields, same types and defaults.
RecipeSettings = make_dataclass(
    "RecipeSettings",
    [(f.name, f.type, field(default=f.default, default_factory=f.default_factory)) for f in recipe_fields()],
    kw_only=True,
)
TASK_KEYS = ("task", "targets", "threshold")  # what the data sets learn: prepare's --task, --target, --threshold
# ... set at a recipe's top level: `prepare_dataset`'s own keywords, same types and defaults (no task: classification).
RecipeTask = make_dataclass(
    "RecipeTask",
    [(p.name, p.annotation, field(default=p.default)) for p in signature(prepare_dataset).parameters.values()
     if p.name in TASK_KEYS],
    kw_only=True,
)  # fmt: skip


@dataclass
class DemoData:
    """Built-in synthetic study-style audio used while a data set names no `audio` folder."""

    clips_per_class: int = 8
    seconds: float = 6.0
    seed: int = 0


@dataclass
class DatasetSpec:
    """Where one named data set's audio and labels are, and how its clips are grouped."""

    audio: str | None = None
    labels: str | None = None
    group_by: str | None = None
    id_column: str | None = None
    label_column: str | None = None
    cuts: list[float] | None = None
    skip_unlabeled: bool = False
    allow_outliers: bool = False  # regression: keep far-outlying target values (prepare --allow-outliers)
    demo: DemoData = field(default_factory=DemoData)

    @property
    def is_demo(self) -> bool:
        return self.audio is None


@dataclass
class Stage:
    """One grid of the experiment: a data set × features × archs × modes × augmentations."""

    name: str
    dataset: str
    features: list[str] = field(default_factory=list)  # classification; regression, multilabel: from `targets`
    modes: list[str] = field(default_factory=lambda: list(MODES))
    augmentations: list[str] = field(default_factory=lambda: ["none"])
    weights_from: str | None = None  # a previous stage whose models start this one (Experiment B)
    archs: list[str] | None = None  # the stage's own architectures (default: the recipe's `archs`)


def stage_archs(recipe: Recipe, stage: Stage) -> list[str]:
    """The architectures one stage trains: its own `archs`, else the recipe's."""
    return recipe.archs if stage.archs is None else stage.archs


def arch_settings(settings: dict, arch: str) -> dict:
    """A cell's settings for `arch`: the grid's, without `size` for an architecture that reads a fixed input
    (musicnn's patches), to which a grid-wide resolution does not apply."""
    return {key: value for key, value in settings.items() if not (key == "size" and get_arch(arch).spectrogram)}


@dataclass
class GanSpec:
    """How Experiment C makes its artificial spectrograms."""

    backend: str = "diffaug"
    steps: int = 300
    images_per_class: int = 40
    size: int = 32
    stylegan_dir: str | None = None


@dataclass
class Recipe(RecipeSettings, RecipeTask):
    """A whole experiment; every key of a recipe file is a field here (the training settings: RecipeSettings;
    the task: RecipeTask)."""

    experiment: str
    description: str
    datasets: dict[str, DatasetSpec]
    stages: list[Stage]
    archs: list[str]
    valid_pct: float = 0.2
    test_pct: float = 0.0  # > 0: a held-out test split per data set, scored once per cell (prepare --test-pct)
    folds: int | None = None  # set (≥ 2): each cell is a K-fold cross-validation (`cv.run_cv`) instead of one split
    repeats: int = 1  # with folds: deal the clips into K folds R times
    spectrogram: dict = field(default_factory=dict)
    demo_settings: dict = field(default_factory=dict)  # applied while data sets use the built-in demo audio
    gan: GanSpec = field(default_factory=GanSpec)
    augment_dirs: list[str] = field(default_factory=list)
    baseline: bool = False
    source: str = ""
    overridden: list[str] = field(default_factory=list)  # top-level keys set by --set / overrides: never demo_settings'


def builtin_names() -> list[str]:
    """Names of the recipes shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files(RECIPES_PACKAGE).iterdir() if p.name.endswith(".yaml"))


def recipe_text(name_or_path: str | Path) -> tuple[str, str]:
    """(YAML text, where it came from) of a built-in name or a file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise MerError(f"{path}: recipe file not found; built-in recipes: {', '.join(builtin_names())}")
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
    _validate(recipe)
    return recipe


def _build(raw: dict, source: str) -> Recipe:
    values = _typed(Recipe, raw, source, "")
    values["datasets"] = {
        name: _dataset(spec or {}, source, f"datasets.{name}.")
        for name, spec in _mapping(raw, "datasets", source).items()
    }
    stages = raw.get("stages") or []
    if not isinstance(stages, list):
        raise MerError(f"{source}: 'stages' must be a list of stages (name, dataset, features, modes)")
    values["stages"] = [_required(Stage, stage, source, f"stages[{i}].") for i, stage in enumerate(stages)]
    values["gan"] = GanSpec(**_typed(GanSpec, raw.get("gan") or {}, source, "gan."))
    values["source"] = source
    for name in ("experiment", "description", "datasets", "stages", "archs"):
        if name not in values or values[name] in (None, [], {}):
            raise MerError(f"{source}: missing required key {name!r}")
    return Recipe(**values)


def _required(cls, raw: dict, source: str, prefix: str):
    """`cls` built from `raw`, naming the first required key that is missing."""
    values = _typed(cls, raw, source, prefix)
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
    values = _typed(DatasetSpec, raw, source, prefix)
    values["demo"] = DemoData(**_typed(DemoData, raw.get("demo") or {}, source, f"{prefix}demo."))
    return DatasetSpec(**values)


_NESTED = {"datasets", "stages", "gan", "demo", "source"}
_INTERNAL = {"source", "overridden"}  # Recipe fields that are not recipe keys


def _typed(cls, raw: dict, source: str, prefix: str) -> dict:
    """Check keys against `cls`'s fields (suggesting close names) and scalar value types."""
    if not isinstance(raw, dict):
        raise MerError(f"{source}: {prefix[:-1] or 'the recipe'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known or key in _INTERNAL:
            keys = [k for k in known if k not in _INTERNAL]
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(keys)}"
            raise MerError(f"{source}: unknown key {prefix + str(key)!r}{hint}")
        if key in _NESTED:
            continue
        values[key] = _check_type(known[key].type, value, source, f"{prefix}{key}")
    return values


def _check_type(annotation: str, value: Any, source: str, key: str) -> Any:
    """Validate one scalar/list value against its (string) annotation."""
    if value is None:
        if "None" in annotation:
            return None
        raise MerError(f"{source}: {key!r} must not be empty")
    checks = [
        (
            "list[float]",
            lambda v: isinstance(v, list) and all(isinstance(x, int | float) for x in v),
            "a list of numbers",
        ),
        (
            "list[str]",
            lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "a list of names",
        ),
        (
            "float | str",
            lambda v: isinstance(v, int | float | str) and not isinstance(v, bool),
            "a number or 'auto'",
        ),
        ("bool", lambda v: isinstance(v, bool), "true or false"),
        ("int", lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
        ("float", lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
        ("str", lambda v: isinstance(v, str | int | float) and not isinstance(v, bool), "text"),
        ("dict", lambda v: isinstance(v, dict), "a mapping"),
    ]
    for name, check, meaning in checks:
        if annotation.startswith(name):
            if not check(value):
                raise MerError(f"{source}: {key!r} must be {meaning} (got {value!r})")
            return str(value) if name.startswith("str") else value
    return value


def _validate(recipe: Recipe) -> None:
    """Cross-field checks: names that must exist, values that must be in range."""
    src = recipe.source
    every_arch = list(dict.fromkeys([*recipe.archs, *(a for stage in recipe.stages for a in stage.archs or [])]))
    for arch in every_arch:
        try:
            get_arch(arch)
        except MerError as exc:
            raise MerError(f"{src}: archs: {exc}") from exc
    if not 0 < recipe.valid_pct < 1:
        raise MerError(f"{src}: 'valid_pct' must lie between 0 and 1")
    if not 0 <= recipe.test_pct < 1 or recipe.valid_pct + recipe.test_pct >= 1:
        raise MerError(f"{src}: 'test_pct' must lie between 0 and 1 and leave clips to train beside 'valid_pct'")
    _validate_folds(recipe)
    SpecConfig.from_dict(recipe.spectrogram, source=f"{src}: spectrogram")
    unknown_demo = set(recipe.demo_settings) - set(DEMO_KEYS)
    if unknown_demo:
        raise MerError(f"{src}: unknown key demo_settings.{sorted(unknown_demo)[0]!r}; allowed: {', '.join(DEMO_KEYS)}")
    recipe.demo_settings = _typed(RecipeSettings, recipe.demo_settings, src, "demo_settings.")
    settings = recipe_settings(recipe)
    for arch in every_arch:
        try:
            TrainConfig(arch=arch, **arch_settings(settings, arch)).check(name=repr)  # naming recipe keys
        except MerError as exc:
            raise MerError(f"{src}: {exc}") from exc
    _validate_task(recipe)
    names = [stage.name for stage in recipe.stages]
    for i, stage in enumerate(recipe.stages):
        where = f"{src}: stages[{i}] ({stage.name})"
        if stage.dataset not in recipe.datasets:
            raise MerError(
                f"{where}: data set {stage.dataset!r} is not under 'datasets' ({', '.join(recipe.datasets)})"
            )
        bad = [f for f in stage.features if not f]
        if bad or not stage.features:
            raise MerError(f"{where}: 'features' must name at least one of {', '.join(FEATURES)}")
        for mode in stage.modes:
            if mode not in MODES:
                raise MerError(f"{where}: mode {mode!r} is not one of {', '.join(MODES)}")
        for augmentation in stage.augmentations:
            if augmentation not in ("none", "gan", "dirs"):
                raise MerError(f"{where}: augmentation {augmentation!r} is not one of none, gan, dirs")
        if "dirs" in stage.augmentations and not recipe.augment_dirs:
            raise MerError(f"{where}: augmentation 'dirs' needs 'augment_dirs' (or --augment-dir DIR)")
        fixed = [arch for arch in stage_archs(recipe, stage) if get_arch(arch).spectrogram]
        extra = [augmentation for augmentation in stage.augmentations if augmentation != "none"]
        if extra and (fixed or SpecConfig.from_dict(recipe.spectrogram).bit_depth != 8):
            reader = fixed[0] if fixed else "the recipe's spectrogram"
            raise MerError(
                f"{where}: augmentation {extra[0]!r} adds 8-bit dB images, which {reader} does not read; give it a "
                "stage with augmentations [none]"
            )
        if stage.weights_from is not None and stage.weights_from not in names[:i]:
            raise MerError(f"{where}: weights_from {stage.weights_from!r} must name an earlier stage")
    if len(set(names)) != len(names):
        raise MerError(f"{src}: stage names must be unique")
    _validate_names(recipe)


def _validate_names(recipe: Recipe) -> None:
    """Every name that becomes part of a file or folder name under --out is one safe path component."""
    src = recipe.source
    check_component(recipe.experiment, f"{src}: experiment", NAME_FIX)
    for name in recipe.datasets:
        check_component(name, f"{src}: data set name", NAME_FIX)
    for i, stage in enumerate(recipe.stages):
        check_component(stage.name, f"{src}: stages[{i}] name", NAME_FIX)
        for feature in stage.features:
            key = "targets" if recipe.task != TASKS[0] else f"stages[{i}] ({stage.name}) feature"
            check_component(feature, f"{src}: {key}", NAME_FIX)
    if recipe.gan.backend not in GAN_BACKENDS:
        raise MerError(f"{src}: 'gan.backend' must be one of {', '.join(GAN_BACKENDS)} (got {recipe.gan.backend!r})")


def _validate_folds(recipe: Recipe) -> None:
    """`folds`/`repeats`: in range, and not with what a cross-validated cell cannot honestly do."""
    src = recipe.source
    if recipe.folds is None:
        if recipe.repeats != 1:
            raise MerError(f"{src}: 'repeats' needs 'folds' (e.g. --set folds=5); remove 'repeats' or set 'folds'")
        return
    if recipe.folds < 2:
        raise MerError(f"{src}: 'folds' must be at least 2 (got {recipe.folds}); or leave it out for one split")
    if recipe.repeats < 1:
        raise MerError(f"{src}: 'repeats' must be at least 1 (got {recipe.repeats})")
    if recipe_settings(recipe)["patience"]:
        raise MerError(
            f"{src}: 'patience' with 'folds': each fold is scored on its validation clips, so it cannot stop early on "
            "them (cv keeps every fold's last epoch); remove 'patience' or 'folds'"
        )
    for i, stage in enumerate(recipe.stages):
        where = f"{src}: stages[{i}] ({stage.name})"
        if stage.weights_from is not None:
            raise MerError(
                f"{where}: weights_from needs one model per cell, but with 'folds' a cell holds one per fold; "
                "run this recipe without 'folds'"
            )
        if "gan" in stage.augmentations:
            raise MerError(
                f"{where}: augmentation 'gan' with 'folds': the GAN learns from clips the folds validate on; "
                "drop 'gan' from augmentations or run without 'folds'"
            )


def _validate_task(recipe: Recipe) -> None:
    """`task`, `targets`, `threshold` and the keys that depend on the task; then each stage of a regression or
    multilabel recipe learns one data set, named as prepare names it (`valence+energy`, `moods`)."""
    src, task = recipe.source, recipe.task or TASKS[0]
    if task not in TASKS:
        raise MerError(f"{src}: 'task' must be one of {', '.join(TASKS)} (got {task!r})")
    recipe.task = task
    settings = recipe_settings(recipe)
    if settings["loss"] != "auto" and task != "regression":
        raise MerError(f"{src}: 'loss: {settings['loss']}' is a regression loss; remove it or set 'task: regression'")
    if settings["monitor"] not in ("auto", *TASK_MONITORS[task]):
        raise MerError(
            f"{src}: 'monitor: {settings['monitor']}' is not a score of a {task} recipe; choose auto or "
            f"{' or '.join(TASK_MONITORS[task])}"
        )
    if task == "classification":
        for key in ("targets", "threshold"):
            if getattr(recipe, key) is not None:
                raise MerError(
                    f"{src}: {key!r} is for 'task: regression' or 'task: multilabel'; add 'task' or remove it"
                )
        return
    _check_task_keys(recipe, task, settings)
    for stage in recipe.stages:
        stage.features = [task_feature(task, recipe.targets)]


def _check_task_keys(recipe: Recipe, task: str, settings: dict) -> None:
    """A regression or multilabel recipe: its own keys given, and none of classification's."""
    src = recipe.source
    if task == "regression" and not recipe.targets:
        raise MerError(f"{src}: 'task: regression' needs 'targets', the numeric labels columns to learn (e.g. "
                       "targets: [valence, energy])")  # fmt: skip
    if recipe.threshold is not None and (task == "regression" or not recipe.targets):
        raise MerError(f"{src}: 'threshold' reads mood columns ('task: multilabel' with 'targets'); remove 'threshold'")
    if recipe.threshold is not None and not 0 < recipe.threshold <= 1:
        raise MerError(f"{src}: 'threshold' must lie in (0, 1]: a mood holds at that share of the clip's top value")
    if settings["balanced"]:
        raise MerError(f"{src}: 'balanced' balances classes, which a {task} recipe has not; set 'balanced: false'")
    for key in ("mixup", "label_smoothing"):
        if settings[key]:
            raise MerError(f"{src}: '{key}' is for classification; a {task} recipe trains without it: set '{key}: 0'")
    for name, spec in recipe.datasets.items():
        where = f"{src}: 'datasets.{name}"
        if spec.cuts:
            raise MerError(f"{where}.cuts' bins ratings into classes; a {task} recipe keeps the values: remove it")
        if task == "regression" and spec.label_column:
            raise MerError(f"{where}.label_column' names classes; a regression recipe learns 'targets': remove it")
        if task == "multilabel" and bool(recipe.targets) == bool(spec.label_column):
            raise MerError(
                f"{where}': a multilabel recipe reads the moods from 'targets' (one column per mood) or from "
                f"'datasets.{name}.label_column' (';'-separated moods): set one of them, not both"
            )
    for i, stage in enumerate(recipe.stages):
        where = f"{src}: stages[{i}] ({stage.name})"
        if stage.features:
            raise MerError(f"{where}: 'features' are classification labels; a {task} recipe learns its 'targets' "
                           "(or moods) together: remove 'features' (and --feature)")  # fmt: skip
        extra = [augmentation for augmentation in stage.augmentations if augmentation != "none"]
        if extra:
            raise MerError(f"{where}: augmentation {extra[0]!r} adds images per class, which a {task} recipe has not; "
                           "use 'none'")  # fmt: skip


def recipe_settings(recipe: Recipe) -> dict:
    """The training settings in force: `demo_settings` apply while every data set is the demo, except to the keys
    set explicitly (--set / overrides), which always win (`demo_notes` says where)."""
    settings = {item.name: getattr(recipe, item.name) for item in recipe_fields()}
    if all(spec.is_demo for spec in recipe.datasets.values()):
        settings.update({key: value for key, value in recipe.demo_settings.items() if key not in recipe.overridden})
    return settings


def demo_notes(recipe: Recipe) -> list[str]:
    """One note per explicit setting that wins over the recipe's `demo_settings` on demo data."""
    if not all(spec.is_demo for spec in recipe.datasets.values()):
        return []
    return [
        f"--set {key}={getattr(recipe, key)} is used instead of demo_settings.{key}={value} (an explicit setting wins)"
        for key, value in recipe.demo_settings.items()
        if key in recipe.overridden and getattr(recipe, key) != value
    ]
