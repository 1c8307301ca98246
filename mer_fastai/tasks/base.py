"""The task as a type: what a data set's labels are, and the maths that follows from it.

One `Task` object per task (`classification`, `regression`, `multilabel`), found by name with
`tasks.registry.get_task`: its facts (`TaskFacts`: labels, outputs, options, report) and its computing
methods (label reader, targets, loss and metrics, output activation, ensemble combination, predictions,
scores, scale). Commands never compare task names: they ask the task. How a task's results are shown
(plots, tables, ONNX output text) is the report's: `report.views.registry.views_of(task)`; how its prediction
files are laid out is the run folder's: `runs.predictions.layout_of(task)`. Adding a task is one new subclass,
one line in `tasks.registry`, and its views and prediction layout registered.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..data.dataset import DEFAULT_TASK

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import numpy as np
    import torch

    from ..data.dataset import DatasetInfo
    from ..data.labelfiles import LabelTable
    from ..data.labelsource import LabelSource
    from ..scoring.scores import Tracks, ValueTracks

__all__ = ["Task", "TaskFacts", "registered_for"]


@dataclass(frozen=True, kw_only=True)
class TaskFacts:
    """What a task is, as data: its labels, outputs, options and report (no behaviour); the fields without a
    default every task states."""

    # labels: what a model's outputs are called (dataset.json, metrics.json, model files: "classes", "targets",
    # "moods"); what each fold and training split must hold one of ("class", "mood"; None: nothing); whether they
    # come from `--target` columns, whether `--label-column` may name them, whether `--threshold` reads mood vote
    # shares, whether outlying target values are refused (`--allow-outliers`); whether a clip's label (its image
    # folder) is its set of moods joined by "+" (the split is stratified per mood, the per-class warnings do not
    # apply); whether each image's label is one class (its folder name: what `gan train` conditions on); what its
    # labels are, in a few words (`prepare --task`'s help)
    names_key: str
    learned: str | None
    takes_targets: bool = False
    reads_label_column: bool = True
    takes_threshold: bool = False
    checks_outliers: bool = False
    labels_are_sets: bool = False
    labels_are_classes: bool = False
    described: str
    # outputs: prediction CSV columns (the label columns, then `<column_prefix>_<name>` per output); what a window's
    # or track's prediction shows in predict's JSON; the probability at which an output counts as predicted
    # (None: outputs are not decided); whether track labels are chosen from window probabilities (`--aggregate
    # vote|max`); whether the outputs are values on the targets' scales (scored, plotted and written as values)
    column_prefix: str
    label_columns: tuple[str, ...]
    prediction_fields: tuple[str, ...]
    decision: float | None = None
    chooses_one_label: bool = False
    predicts_values: bool = False
    # options: the scores `--monitor` may pick (the first: what `auto` means); whether `--loss` (mse|ccc) applies;
    # the training options only a classifier takes (`--mixup`, `--label-smoothing`, `--balanced`, `--augment-dir`),
    # refused for this task
    monitors: tuple[str, ...]
    takes_loss: bool = False
    refused_options: tuple[str, ...] = ("mixup", "label_smoothing", "balanced", "extra_train_dirs")
    # report: the summary scores metrics.json holds; what results.md and the terminal tables show per cell (the
    # first: the heatmap's score); the metrics.json block of per-output scores the score tables show (per_class,
    # per_target, per_label); what it lists as a run's errors ("mistakes": misclassified windows and tracks,
    # confusion matrices; "largest_errors": tracks by mean absolute error; "wrong_labels": tracks by wrong
    # moods); the heading over the task's own plots; the classic baseline's estimator family
    # (`evaluation.baseline.models.ESTIMATORS`) and the scores its terminal table shows
    scores: tuple[str, ...]
    table_scores: tuple[str, ...]
    per_output: str
    report_errors: str
    plots_heading: str | None = None
    baseline_estimator: str
    baseline_scores: tuple[str, ...]


class Task:
    """The task's facts (`facts`) and its maths: labels, targets, loss, metrics, outputs, scores. How its results
    are shown (plots, tables) is the report's (`report.views`); its prediction files' layout the run folder's
    (`runs.predictions`)."""

    name: ClassVar[str]
    facts: ClassVar[TaskFacts]

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __getattr__(self, name: str) -> Any:
        """0.2's task attributes (`Task.monitors`), now fields of `facts`: still read, with a `DeprecationWarning`,
        until 0.3."""
        if name in TaskFacts.__dataclass_fields__:
            warnings.warn(f"Task.{name} moved to Task.facts.{name}; the old name goes in 0.3", DeprecationWarning,
                          stacklevel=2)  # fmt: skip
            return getattr(self.facts, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        """A task is its name: equal to the task object of that name and to the name itself (`meta.task ==
        "regression"` holds as it did when records held the name)."""
        if isinstance(other, Task | str):
            return self.name == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def is_default(self) -> bool:
        """Whether data sets and model files of this task are written without a `task` field (as in 0.1)."""
        return self.name == DEFAULT_TASK

    def default_feature(self, targets: list[str] | None) -> str:
        """The name a data set of this task goes by without `--feature`: its targets joined by "+"
        (`valence+energy`)."""
        return "+".join(targets or [])

    def read_labels(
        self, source: LabelSource, feature: str | None, audio_dir: str | Path, files: list[Path]
    ) -> LabelTable:
        """The labels of `files` (audio under `audio_dir`) for `feature`, read from `source` as this task reads
        them: the one place a command's label reader is chosen (prepare, evaluate, embed, cv)."""
        raise NotImplementedError

    def columns(self, names: list[str]) -> list[str]:
        """The output columns of a prediction CSV: `prob_<class or mood>` or `pred_<target>`."""
        return [f"{self.facts.column_prefix}_{name}" for name in names]

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """The output activation: raw model outputs (N, outputs) as this task reads them."""
        raise NotImplementedError

    def combine(self, outputs: torch.Tensor) -> torch.Tensor:
        """An ensemble's output from its members' raw outputs (members, N, outputs), in the members' raw form
        (so that `outputs` reads it as it reads one member's)."""
        raise NotImplementedError

    def prediction(self, names: list[str], outputs: np.ndarray, chosen: int | None = None) -> dict:
        """What one window or track predicts from its outputs (the `label`, `probabilities`, `moods` and `values`
        of `inference.tracks.WindowPrediction`); `chosen`: the class an aggregation picked, where one is chosen."""
        raise NotImplementedError

    def describe(self, names: list[str], outputs: np.ndarray) -> str:
        """One prediction as text: its `label` (a class, or the moods joined by ";")."""
        return self.prediction(names, outputs)["label"]

    def score(
        self, outputs: np.ndarray, truth: np.ndarray, clip_ids: list[str], names: list[str], aggregate: str = "mean"
    ) -> tuple[dict, Tracks | ValueTracks]:
        """Window scores (top level, a `track` block) and the tracks of one split's window `outputs` (class
        probabilities, values or mood probabilities) against `truth`, by the function training scores the task
        with (`scoring.scores`); `aggregate` combines a classifier's windows."""
        raise NotImplementedError

    def score_rows(
        self, names: list[str], windows: list[dict], tracks: list[dict], clip_ids: list[str]
    ) -> tuple[dict, dict, ValueTracks | None]:
        """The window and track metrics of prediction rows read back (`scoring.predictions`; `clip_ids`: each
        window row's track) and, where the task scores values, their tracks: the window rows scored by `score`
        (a track: the mean of its windows, as in training)."""
        raise NotImplementedError

    # training (`training.learner`, `training.loaders`, `training.fit`)
    def fit_loss(self, loss: str, label_smoothing: float) -> Any:
        """The fastai loss a training run minimises (`--loss`, `--label-smoothing`); None: fastai's default for
        the loaders' targets."""
        raise NotImplementedError

    def fit_metrics(self) -> list:
        """The fastai metrics a training run reports each epoch (what `--monitor` may pick)."""
        raise NotImplementedError

    def target_block(self, info: DatasetInfo) -> Any:
        """fastai's target block of the per-image loaders (`training.loaders`)."""
        raise NotImplementedError

    def label_reader(self, values: Callable[[], dict[Path, list[float]]]) -> Callable[[Path], Any]:
        """How the loaders read a training image's label (their `get_y`): here its manifest values (`values()`
        gives every image's: regression's targets, 1/0 per mood)."""
        found = values()
        return lambda path: found[path]

    def target_tensor(self, labels: list, info: DatasetInfo) -> tuple[torch.Tensor, Any]:
        """The in-memory loaders' targets of the labels `label_reader` read, and their vocab: here float rows and
        the targets."""
        import torch

        return torch.tensor(labels, dtype=torch.float32), list(info.targets)

    def output_names(self, info: DatasetInfo, vocab: Callable[[], list[str]]) -> list[str]:
        """What a trained model's outputs are called: here the data set's targets (or moods); `vocab()` gives the
        classes a classifier's are (its loaders')."""
        return list(info.targets)

    def unvalidated(self, rows: list, names: list[str]) -> list[str]:
        """The outputs with training images but none in validation (their recall cannot be measured): none here."""
        return []

    def check_test_set(self, info: DatasetInfo, other: DatasetInfo, where: str) -> None:
        """Refuse a `--test` data set (`where`: the option) whose outputs differ from the training data set's: here
        its targets and their scales."""
        from ..errors import MerError

        if (other.targets, other.scale) != (info.targets, info.scale):
            raise MerError(
                f"{where}: its targets ({', '.join(other.targets) or 'none'}, scale {other.scale}) differ from the "
                f"training data set's ({', '.join(info.targets)}, {info.scale}); prepare it with the same --target "
                "and labels"
            )

    def output_scale(self, info: DatasetInfo) -> list[list[float]] | None:
        """The [low, high] of each output that the head squeezes it into (`models.modelfile.TargetRange`); None:
        the outputs are logits."""
        return None

    def model_record(self, info: DatasetInfo, metrics: dict) -> dict:
        """The task's fields of a trained model's `ModelMeta`: the scores it keeps and what its outputs are."""
        raise NotImplementedError

    def split_truth(self, rows: list, names: list[str]) -> np.ndarray:
        """The true outputs of manifest `rows` as `score` takes them: class indices of `names`, or value rows."""
        import numpy as np

        return np.array([row.values for row in rows], dtype=np.float64)

    def output_scores(self, block: dict, names: list[str], prefix: str) -> dict[str, float | None]:
        """The per-output scores a cross-validation summarises beside the task's `scores` of a metrics `block`
        (`prefix` "" or "track_"): none here."""
        return {}


def named(names: list[str], outputs: np.ndarray) -> dict[str, float]:
    """Each output by name, rounded to 6 decimals as predictions give them."""
    return {name: round(float(value), 6) for name, value in zip(names, outputs, strict=True)}


def registered_for(table: dict[type[Task], type], task: Task, what: str, how: str) -> type:
    """The entry of `table` for `task`'s class or the nearest of its bases (as fastai dispatches on a target's
    type); a task without one is a TypeError naming `what` it lacks and `how` to register it."""
    for kind in type(task).__mro__:
        if kind in table:
            return table[kind]
    raise TypeError(f"{task!r} has no {what}: register {how}")
