"""What a recipe holds: the dataclasses every key of a recipe file becomes, the type check of each key's value,
and the settings in force.

The training settings are `TrainConfig`'s recipe fields, the task keys `prepare_dataset`'s, a data set's label
keys `LabelSource`'s (same types and defaults): each is declared once, where it is used.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from inspect import signature
from pathlib import Path
from typing import Any

from ..bounds import SEED, Bounds, quote
from ..choices import STUDY_MODES
from ..data.labelsource import LabelSource
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from ..models.archs import get_arch
from ..preparation.prepare import prepare_dataset
from ..settings import check_setting, setting
from ..training.config import recipe_fields

DEMO_KEYS = ("epochs", "bs", "size", "lr", "weights")  # the settings `demo_settings` may change

# The training settings a recipe sets at its top level: TrainConfig's recipe fields, same types and defaults.
RecipeSettings = make_dataclass(
    "RecipeSettings",
    [(f.name, f.type, field(default=f.default, default_factory=f.default_factory)) for f in recipe_fields()],
    kw_only=True,
)


TASK_KEYS = ("task", "targets", "threshold")  # what the data sets learn: prepare's --task, --target, --threshold


# ... set at a recipe's top level: `prepare_dataset`'s own keywords, same types and defaults (no task: classification);
# a `LabelSource` field's metadata (its bounds, checked naming the key) with it
LABEL_FIELDS = {item.name: item for item in fields(LabelSource)}
RecipeTask = make_dataclass(
    "RecipeTask",
    [(p.name, p.annotation, field(default=p.default, metadata=getattr(LABEL_FIELDS.get(p.name), "metadata", None)))
     for p in signature(prepare_dataset).parameters.values() if p.name in TASK_KEYS],
    kw_only=True,
)  # fmt: skip


@dataclass
class DemoData:
    """Built-in synthetic study-style audio used while a data set names no `audio` folder."""

    clips_per_class: int = setting(8, bounds=Bounds(2, 10_000, whole=True))
    seconds: float = setting(6.0, bounds=Bounds(0, 3600, above=True))
    seed: int = setting(0, bounds=SEED)


RECIPE_LABEL_KEYS = ("targets", "threshold")  # LabelSource fields a recipe sets at its top level, for every data set


def _label_source(self, labels: Path | None, recipe: Recipe) -> LabelSource:
    """This data set's `LabelSource`: its labels file `labels` (the built-in demo's ratings where it names none),
    its label keys and the recipe's `targets` and `threshold`."""
    keys = {item.name: getattr(self, item.name) for item in fields(LabelSource) if item.name not in RECIPE_LABEL_KEYS}
    return LabelSource(**{**keys, "labels": labels, **{key: getattr(recipe, key) for key in RECIPE_LABEL_KEYS}})


# Where one named data set's audio and labels are, and how its clips are grouped: its label keys are
# `LabelSource`'s (but the recipe-wide `targets` and `threshold`), same types and defaults.
DatasetSpec = make_dataclass(
    "DatasetSpec",
    [
        ("audio", "str | None", field(default=None)),
        *[(item.name, item.type, field(default=item.default, metadata=item.metadata)) for item in fields(LabelSource)
          if item.name not in RECIPE_LABEL_KEYS],
        ("demo", "DemoData", field(default_factory=DemoData)),
    ],
    namespace={"is_demo": property(lambda self: self.audio is None), "label_source": _label_source},
)  # fmt: skip


@dataclass
class Stage:
    """One grid of the experiment: a data set × features × archs × modes × augmentations."""

    name: str
    dataset: str
    features: list[str] = field(default_factory=list)  # classification; regression, multilabel: from `targets`
    modes: list[str] = field(default_factory=lambda: list(STUDY_MODES))
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
    steps: int = setting(300, bounds=Bounds(1, 10_000_000, whole=True))
    images_per_class: int = setting(40, bounds=Bounds(1, 100_000, whole=True))
    size: int = setting(32, bounds=Bounds(8, 1024, whole=True))  # as gan.train.GAN_SIZE
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
    # folds set (≥ 2): each cell is a K-fold cross-validation (`evaluation.cv.run_cv`) instead of one split
    folds: int | None = None
    repeats: int = 1  # with folds: deal the clips into K folds R times
    spectrogram: dict = field(default_factory=dict)
    demo_settings: dict = field(default_factory=dict)  # applied while data sets use the built-in demo audio
    gan: GanSpec = field(default_factory=GanSpec)
    augment_dirs: list[str] = field(default_factory=list)
    baseline: bool = False
    source: str = ""
    overridden: list[str] = field(default_factory=list)  # top-level keys set by --set / overrides: never demo_settings'
    # `spectrogram` parsed, once, by `recipe_checks.validate` (`load_recipe`): what the checks and the runner read
    spec: SpecConfig | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The recipe as run, as plain data (its keys as written: `spectrogram`, not `spec`)."""
        values = asdict(self)
        del values["spec"]
        return values


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
        f"--set {key}={quote(getattr(recipe, key))} is used instead of demo_settings.{key}={quote(value)} "
        "(an explicit setting wins)"
        for key, value in recipe.demo_settings.items()
        if key in recipe.overridden and getattr(recipe, key) != value
    ]


_NESTED = {"datasets", "stages", "gan", "demo", "source"}
_INTERNAL = {"source", "overridden", "spec"}  # Recipe fields that are not recipe keys


def typed_values(cls, raw: dict, source: str, prefix: str) -> dict:
    """Check keys against `cls`'s fields (suggesting close names) and scalar value types."""
    if not isinstance(raw, dict):
        raise MerError(f"{source}: {prefix[:-1] or 'the recipe'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known or key in _INTERNAL:
            keys = [k for k in known if k not in _INTERNAL]
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" (did you mean {quote(close[0])}?)" if close else f"; known keys: {', '.join(keys)}"
            raise MerError(f"{source}: unknown key {quote(prefix + str(key))}{hint}")
        if key in _NESTED:
            continue
        values[key] = _check_type(known[key].type, value, source, f"{prefix}{key}")
        check_setting(known[key], value, f"{source}: {quote(prefix + key)}")  # its choices and bounds
    return values


def _check_type(annotation: str, value: Any, source: str, key: str) -> Any:
    """Validate one scalar/list value against its (string) annotation."""
    if value is None:
        if "None" in annotation:
            return None
        raise MerError(f"{source}: {quote(key)} must not be empty")
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
                raise MerError(f"{source}: {quote(key)} must be {meaning} (got {quote(value)})")
            texts = [value] if name.startswith("str") else value if name == "list[str]" else []
            if not all(str(text).strip() for text in texts):
                raise MerError(f"{source}: {quote(key)} must not be empty text (an unset shell variable?)")
            return str(value) if name.startswith("str") else value
    return value
