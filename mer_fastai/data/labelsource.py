"""`LabelSource`: where the labels of audio clips come from and how to read them, as one value.

`prepare_dataset`, `evaluate` and `embed_audio` take the labels as one `LabelSource` (or a labels file with the
label keywords, deprecated and kept for one release: `label_source` turns either into one value), and so do a
recipe's data sets. Each field declares its CLI flag and help in its metadata (`settings.setting`), from which
`cli.options.with_label_options` makes the options of `prepare`, `evaluate` and `embed`. The task reads the source
(`tasks.base.Task.read_labels`: prepare, evaluate), so the reader is chosen in one place; `embed` labels clips with
the class reader (`data.labels.label_table`) whatever the model's task, and `cv` reads a data set's groups back with
it from the settings in `dataset.json`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from ..bounds import Bounds
from ..errors import MerError
from ..settings import check_setting, setting

__all__ = ["LabelSource", "check_feature"]


@dataclass(frozen=True)
class LabelSource:
    """The labels file and the options that say how to read it (all optional: without `labels`, clips are
    labelled by their class folders)."""

    labels: str | Path | None = setting(
        None,
        flags=("--labels", "-l"),
        help="Ratings/quadrant/generic CSV; omit when clips sit in one folder per class.",
    )
    group_by: str | None = setting(None, flags=("--group-by",), help="Labels column of each clip's group.")
    id_column: str | None = setting(
        None,
        flags=("--id-column",),
        help="Generic CSV: column holding the clip id (path relative to the audio folder, or file stem).",
    )
    label_column: str | None = setting(
        None, flags=("--label-column",), help="Generic CSV: column holding the class or rating."
    )
    cuts: list[float] | None = setting(
        None,
        flags=("--cuts",),
        help="Explicit cut points for 3 levels, e.g. '3.5,6.5' (default: tertiles).",
        bounds=Bounds(),
        cli=str,  # text on the command line: `cli.options.parse_cuts`
    )
    skip_unlabeled: bool = setting(
        False,
        flags=("--skip-unlabeled",),
        help="Leave out audio files with no row in --labels, or whose label cell is blank/NaN/not a number "
        "(reported as skipped).",
    )
    targets: list[str] | None = setting(
        None, flags=("--target",), help="A numeric labels column: a regression target or a mood (repeatable)."
    )
    threshold: float | None = setting(
        None,
        flags=("--threshold",),
        help="Multilabel from --target mood columns: a mood holds when its value is at least this fraction of the "
        "clip's largest value (default 0.5).",
        bounds=Bounds(0, 1, above=True),
    )
    allow_outliers: bool = setting(
        False,
        flags=("--allow-outliers",),
        help="Regression: keep target values far outside the others (beyond 10 interquartile ranges of a "
        "quartile), which are otherwise refused naming their rows; prepare notes them.",
    )

    def __post_init__(self) -> None:
        """Every number within its field's bounds (one line naming the option)."""
        for item in fields(self):
            check_setting(item, getattr(self, item.name), item.metadata["flags"][0])

    def check(
        self, task: LabelRules, name: Callable[[str], str] | None = None, what: str = "data set", *, chosen: bool = True
    ) -> None:
        """The options the `task` they label for does not take, each rule worded here once (prepare, evaluate and
        recipes ask): one line naming an option as `name(field)` says (default: its CLI flag; a recipe names its
        keys) and saying what `what` (a data set, a recipe, a model) of that task takes instead. `chosen`: whether
        the caller chooses the task (prepare, recipes), so the fix may be another task (a model's is fixed)."""
        name = name or flag
        if self.cuts and task.facts.takes_targets:
            raise MerError(f"{name('cuts')} bins ratings into classes; a {task} {what} keeps its values: drop it")
        if self.label_column and not task.facts.reads_label_column:
            raise MerError(
                f"{name('label_column')} names classes; a {task} {what} reads {name('targets')} columns: drop it"
            )
        if self.targets and not task.facts.takes_targets:
            other = f", or choose a {name('task')} that learns them" if chosen else ""
            raise MerError(
                f"{name('targets')} names numeric labels columns (regression targets or moods); a {task} {what} has "
                f"classes: drop it{other}"
            )
        if self.threshold is not None and not task.facts.takes_threshold:
            raise MerError(f"{name('threshold')} reads mood columns; a {task} {what} has no moods: drop it")
        if self.allow_outliers and not task.facts.checks_outliers:
            raise MerError(
                f"{name('allow_outliers')} keeps outlying regression targets; a {task} {what} has none: drop it"
            )

    def needs(self, task: LabelRules, name: Callable[[str], str] | None = None, what: str = "data set") -> None:
        """The options the `task` cannot do without, each rule worded here once (prepare, evaluate and recipes ask;
        `name` and `what` as in `check`): a task of values reads them from a labels file, regression from the
        `targets` columns, moods from the `targets` mood columns or a `label_column` (`check_moods`)."""
        name = name or flag
        facts = task.facts
        if facts.takes_targets and self.labels is None:
            raise MerError(
                f"{name('labels')} is missing: a {task} {what} reads its {facts.names_key} from the columns of a "
                f"labels file: give one"
            )
        if facts.takes_targets and not facts.reads_label_column and not self.targets:
            raise MerError(
                f"{name('targets')} is missing: a {task} {what} learns the numeric labels column(s) it names: give "
                "one or more"
            )
        if facts.takes_targets and facts.reads_label_column:
            self.check_moods(name, f"{task} {what}")

    def check_moods(self, name: Callable[[str], str] | None = None, what: str = "multilabel data set") -> None:
        """Moods come from one numeric column per mood (`targets`) or from one column of `;`-separated moods
        (`label_column`), never both, and only mood columns have vote shares for `threshold` to read (`what`: the
        multilabel data set, recipe or model, as `needs` says it; `data.targets.read_moods` asks too)."""
        name = name or flag
        columns, column = name("targets"), name("label_column")
        if bool(self.targets) == bool(self.label_column):
            raise MerError(
                f"{columns} or {column}: a {what} reads its moods from {columns} (one column per mood: 0/1 flags or "
                f"vote shares) or from {column} (';'-separated moods): set one of them, not both"
            )
        if self.threshold is not None and not self.targets:
            raise MerError(
                f"{name('threshold')} reads the vote shares of {columns} mood columns; a {what} reading {column} "
                "has none: drop it"
            )


def check_feature(
    task: LabelRules, feature: str | None, name: Callable[[str], str] | None = None, what: str = "data set"
) -> None:
    """A `feature` named for a `task` of values (evaluate, a recipe's stage) refused, worded here once (`name` and
    `what` as in `LabelSource.check`): such a task learns all its targets or moods at once. (`prepare` names a data
    set of values by its `feature`, so it does not ask.)"""
    if feature and task.facts.takes_targets:
        name = name or flag
        raise MerError(
            f"{name('feature')} names the one label to classify; a {task} {what} learns all its "
            f"{task.facts.names_key} at once: drop it"
        )


class LabelRules(Protocol):
    """What a task says about its labels (`tasks.base.Task`'s facts), as `LabelSource.check` reads them."""

    names_key: str  # what its outputs are called ("targets", "moods")
    takes_targets: bool  # learns numeric --target columns (regression targets, moods)
    reads_label_column: bool  # reads --label-column (classes, or ';'-separated moods)
    takes_threshold: bool  # decides moods at --threshold
    checks_outliers: bool  # refuses outlying targets unless --allow-outliers


OTHER_FLAGS = {"task": "--task", "feature": "--feature"}  # the options beside a `LabelSource` its rules name


def flag(name: str) -> str:
    """The CLI flag of `LabelSource` field `name` (or of `OTHER_FLAGS`), for messages."""
    found = (item.metadata["flags"][0] for item in fields(LabelSource) if item.name == name)
    return next(found, None) or OTHER_FLAGS[name]


def label_source(caller: str, labels: str | Path | LabelSource | None, **options: Any) -> LabelSource:
    """The labels as one `LabelSource`: one given whole, or the labels file with the label keywords `options` (the
    fields of `LabelSource`). Keywords set beside a whole `LabelSource` are refused, naming `caller`; set beside a
    labels file (or none) they work as before with one `DeprecationWarning` (they go in 0.3), pointed at the line
    that called `caller` (`caller`'s own caller: `label_source` is called from `caller` itself)."""
    unset = LabelSource()
    given = [key for key, value in options.items() if value != getattr(unset, key)]
    if not isinstance(labels, LabelSource):
        if given:
            warnings.warn(_deprecation(caller, labels, given, options), DeprecationWarning, stacklevel=3)
        return LabelSource(labels, **options)
    if given:
        raise TypeError(f"{caller}: {', '.join(given)} given beside a LabelSource; set them in it")
    return labels


def _deprecation(caller: str, labels: str | Path | None, given: list[str], options: dict[str, Any]) -> str:
    """The warning for loose label keywords: which, and the `LabelSource` that replaces them."""
    fields = ", ".join([repr(str(labels)) if labels is not None else "None", *(f"{k}={options[k]!r}" for k in given)])
    return (
        f"{caller}: the label keyword(s) {', '.join(given)} are deprecated and will be removed in 0.3; pass "
        f"labels=LabelSource({fields}) (mer_fastai.data.labelsource.LabelSource) instead"
    )
