"""Recipe validation: the cross-field checks of a loaded recipe, each problem one line naming the key."""

from __future__ import annotations

from .._plumbing.files import check_component
from ..bounds import quote
from ..choices import GAN_BACKENDS, MODES
from ..data.labels import FEATURES
from ..data.labelsource import check_feature
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from ..models.archs import get_arch
from ..tasks.base import DEFAULT_TASK, Task
from ..tasks.registry import TASKS, get_task
from ..training.config import TrainConfig
from ..training.task_options import check_task_options
from .recipe_schema import (
    DEMO_KEYS,
    RECIPE_LABEL_KEYS,
    Recipe,
    RecipeSettings,
    arch_settings,
    recipe_settings,
    stage_archs,
    typed_values,
)

RECIPE_NAMES = {"task": "task", **{key: key for key in RECIPE_LABEL_KEYS}}  # the recipe-wide keys label rules name
NAME_FIX = "use letters, digits, '-', '_' or '.' (names become file and folder names)"


def validate(recipe: Recipe) -> None:
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
    for name, spec in recipe.datasets.items():
        if spec.is_demo and spec.labels is not None:
            raise MerError(
                f"{src}: datasets.{name}.labels is set but datasets.{name}.audio is not (the built-in demo audio "
                f"would be used and the labels ignored); set datasets.{name}.audio to the folder of its clips"
            )
    try:
        recipe.spec = SpecConfig.from_dict(recipe.spectrogram, source=f"{src}: spectrogram")  # the one parse
    except MerError as exc:
        raise MerError(str(exc) if str(exc).startswith(src) else f"{src}: spectrogram: {exc}") from exc
    unknown_demo = set(recipe.demo_settings) - set(DEMO_KEYS)
    if unknown_demo:
        first = quote(sorted(map(str, unknown_demo))[0])
        raise MerError(f"{src}: unknown key demo_settings.{first}; allowed: {', '.join(DEMO_KEYS)}")
    recipe.demo_settings = typed_values(RecipeSettings, recipe.demo_settings, src, "demo_settings.")
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
                f"{where}: data set {quote(stage.dataset)} is not under 'datasets' ({', '.join(recipe.datasets)})"
            )
        bad = [f for f in stage.features if not f]
        if bad or not stage.features:
            raise MerError(f"{where}: 'features' must name at least one of {', '.join(FEATURES)}")
        for mode in stage.modes:
            if mode not in MODES:
                raise MerError(f"{where}: mode {quote(mode)} is not one of {', '.join(MODES)}")
        for augmentation in stage.augmentations:
            if augmentation not in ("none", "gan", "dirs"):
                raise MerError(f"{where}: augmentation {quote(augmentation)} is not one of none, gan, dirs")
        if "dirs" in stage.augmentations and not recipe.augment_dirs:
            raise MerError(f"{where}: augmentation 'dirs' needs 'augment_dirs' (or --augment-dir DIR)")
        fixed = [arch for arch in stage_archs(recipe, stage) if get_arch(arch).spectrogram]
        extra = [augmentation for augmentation in stage.augmentations if augmentation != "none"]
        if extra and (fixed or recipe.spec.bit_depth != 8):
            reader = fixed[0] if fixed else "the recipe's spectrogram"
            raise MerError(
                f"{where}: augmentation {quote(extra[0])} adds 8-bit dB images, which {reader} does not read; give "
                "it a stage with augmentations [none]"
            )
        if stage.weights_from is not None and stage.weights_from not in names[:i]:
            raise MerError(f"{where}: weights_from {quote(stage.weights_from)} must name an earlier stage")
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
            key = "targets" if get_task(recipe.task).facts.takes_targets else f"stages[{i}] ({stage.name}) feature"
            check_component(feature, f"{src}: {key}", NAME_FIX)
    if recipe.gan.backend not in GAN_BACKENDS:
        backend = quote(recipe.gan.backend)
        raise MerError(f"{src}: 'gan.backend' must be one of {', '.join(GAN_BACKENDS)} (got {quote(backend)})")


def _validate_folds(recipe: Recipe) -> None:
    """`folds`/`repeats`: in range, and not with what a cross-validated cell cannot honestly do."""
    src = recipe.source
    if recipe.folds is None:
        if recipe.repeats != 1:
            raise MerError(f"{src}: 'repeats' needs 'folds' (e.g. --set folds=5); remove 'repeats' or set 'folds'")
        return
    if recipe.folds < 2:
        raise MerError(f"{src}: 'folds' must be at least 2 (got {quote(recipe.folds)}); or leave it out for one split")
    if recipe.repeats < 1:
        raise MerError(f"{src}: 'repeats' must be at least 1 (got {quote(recipe.repeats)})")
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
    src, name = recipe.source, recipe.task or DEFAULT_TASK
    if name not in TASKS:
        raise MerError(f"{src}: 'task' must be one of {', '.join(TASKS)} (got {quote(name)})")
    recipe.task = name
    task = get_task(name)
    try:
        check_task_options(recipe_settings(recipe), task, repr, "recipe")  # naming recipe keys
    except MerError as exc:
        raise MerError(f"{src}: {exc}") from exc
    _check_label_sources(recipe, task)
    if not task.facts.takes_targets:
        return
    _check_task_keys(recipe, task)
    for stage in recipe.stages:
        stage.features = [task.default_feature(recipe.targets)]


def _check_label_sources(recipe: Recipe, task: Task) -> None:
    """Each data set's labels (its keys and the recipe's `targets` and `threshold`) and each stage's `features`
    checked against the task, as `prepare` and `evaluate` check their options (`data.labelsource`), naming the
    recipe's keys."""
    for name, spec in recipe.datasets.items():

        def key(field: str, dataset: str = name) -> str:
            return quote(RECIPE_NAMES.get(field, f"datasets.{dataset}.{field}"))

        try:  # the built-in demo set brings its own labels file (made when the recipe runs)
            source = spec.label_source(spec.labels or ("built-in demo labels" if spec.is_demo else None), recipe)
            source.check(task, key, "recipe")
            source.needs(task, key, "recipe")
        except MerError as exc:
            raise MerError(f"{recipe.source}: {exc}") from exc
    for i, stage in enumerate(recipe.stages):
        try:
            feature = stage.features[0] if stage.features else None
            check_feature(task, feature, lambda _: "'features' (or --feature)", "recipe")
        except MerError as exc:
            raise MerError(f"{recipe.source}: stages[{i}] ({stage.name}): {exc}") from exc


def _check_task_keys(recipe: Recipe, task: Task) -> None:
    """A regression or multilabel recipe: no stage augmentation adding images per class."""
    src = recipe.source
    for i, stage in enumerate(recipe.stages):
        where = f"{src}: stages[{i}] ({stage.name})"
        extra = [augmentation for augmentation in stage.augmentations if augmentation != "none"]
        if extra:
            raise MerError(f"{where}: augmentation {quote(extra[0])} adds images per class, which a {task} recipe "
                           "has not; use 'none'")  # fmt: skip
