"""The task as a type: what a data set's labels are, and every rule that follows from it.

One `Task` object per task (`classification`, `regression`, `multilabel`), found by name with
`tasks.registry.get_task`.
Commands never compare task names: they ask the task (its label reader, target block, loss and monitors,
output activation, prediction columns, scores, tables and plots, baseline maker). Adding a task is one
new subclass and one line in `tasks.registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import numpy as np
    import torch

    from ..data.dataset import DatasetInfo
    from ..data.labelfiles import LabelTable
    from ..data.labelsource import LabelSource
    from ..scoring.scores import Tracks, ValueTracks


class Task:
    """What every task declares; subclasses fill in the class attributes and override the behaviour."""

    name: ClassVar[str]
    # what a model's outputs are called, as dataset.json, metrics.json and model files list them
    names_key: ClassVar[str]
    # what each fold and training split must hold at least one of ("class", "mood"), None: nothing
    learned: ClassVar[str | None]
    # prediction CSV columns: `<prefix>_<name>` per output, after the label columns
    column_prefix: ClassVar[str]
    label_columns: ClassVar[tuple[str, ...]]
    # the scores `--monitor` may pick (the first: what `auto` means) and the summary scores metrics.json holds
    monitors: ClassVar[tuple[str, ...]]
    scores: ClassVar[tuple[str, ...]]
    # what results.md and the terminal tables show per cell (the first: the heatmap's score)
    table_scores: ClassVar[tuple[str, ...]]
    # the probability at which an output counts as predicted (multilabel), None where outputs are not decided
    decision: ClassVar[float | None] = None
    # whether track labels are chosen from window probabilities (`--aggregate vote|max` need one label a window)
    chooses_one_label: ClassVar[bool] = False
    # whether `--loss` (mse|ccc) applies
    takes_loss: ClassVar[bool] = False
    # the report: the metrics.json block of per-output scores its score tables show (per_class, per_target,
    # per_label); what it lists as a run's errors: "mistakes" (misclassified windows and tracks, confusion
    # matrices), "largest_errors" (tracks by mean absolute error), "wrong_labels" (tracks by wrong moods);
    # the heading over the task's own plots (`plot_files`)
    per_output: ClassVar[str]
    report_errors: ClassVar[str]
    plots_heading: ClassVar[str | None] = None
    # what a window's or track's prediction shows in predict's JSON ("label", "moods", "probabilities", "values")
    prediction_fields: ClassVar[tuple[str, ...]]
    # whether the outputs are values on the targets' scales (not probabilities): scored, plotted and written as values
    predicts_values: ClassVar[bool] = False
    # labels (`data.labelsource.LabelSource`): whether they come from `--target` columns (regression's values,
    # the moods), whether `--label-column` may name them instead (classes, or ';'-separated moods), whether
    # `--threshold` reads mood vote shares, whether outlying target values are refused (`--allow-outliers`)
    takes_targets: ClassVar[bool] = False
    reads_label_column: ClassVar[bool] = True
    takes_threshold: ClassVar[bool] = False
    checks_outliers: ClassVar[bool] = False
    # whether a clip's label (its image folder) is its set of moods joined by "+": the split is stratified per
    # mood, and the per-class warnings about the split and the validation windows do not apply
    labels_are_sets: ClassVar[bool] = False
    # the classic baseline: its estimator family (`evaluation.baseline.models.ESTIMATORS`: "classifier",
    # "regressor", "mood_classifier") and the scores its terminal table shows of windows and of tracks
    baseline_estimator: ClassVar[str]
    baseline_scores: ClassVar[tuple[str, ...]]
    # the training options only a classifier takes (`--mixup`, `--label-smoothing`): refused for this task
    refused_options: ClassVar[tuple[str, ...]] = ("mixup", "label_smoothing")
    # whether each image's label is one class (its folder name): what `gan train` conditions its images on
    labels_are_classes: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<task {self.name}>"

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
        return [f"{self.column_prefix}_{name}" for name in names]

    def plot_files(self, names: list[str]) -> list[tuple[str, str]]:
        """The task's own plots in a run folder for the outputs `names`, as (file name, caption): none here."""
        return []

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

    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        """What an exported ONNX model's `logits` output holds (an ensemble's: of its members')."""
        raise NotImplementedError

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

    def write_predictions(
        self, folder: Path, prefix: str, rows: list, outputs: np.ndarray, tracks: Tracks | ValueTracks, names: list[str]
    ) -> tuple[Path, Path]:
        """A split's window and track prediction files as a training run writes them (`prefix` "" for the
        validation split or `runs.layout.TEST_PREFIX`); `names` the classes, targets or moods."""
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

    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: Tracks | ValueTracks, info: DatasetInfo, title: str
    ) -> None:
        """The plots of one scored split of a training run (`prefix` "" or the test prefix)."""
        raise NotImplementedError

    def write_windows(
        self,
        folder: Path,
        truth: np.ndarray,
        outputs: np.ndarray,
        tracks: Tracks | ValueTracks,
        scores: dict,
        title: str,
    ) -> None:
        """A training run's files about all its validation windows: none here."""

    def terminal_table(self, metrics: dict, title: str) -> Any:
        """The rich table `train` prints of a finished run's `metrics`."""
        raise NotImplementedError

    # evaluation (`evaluation.eval_files`, `evaluation.oof`) and the classic baseline
    def track_columns(self, names: list[str]) -> list[str]:
        """The output columns of `evaluate`'s predictions.csv of a task it writes tracks of as values, after file,
        clip_id, group and windows."""
        raise NotImplementedError

    def track_cells(self, names: list[str], true: np.ndarray, predicted: np.ndarray) -> list[str]:
        """One track's cells under `track_columns`."""
        raise NotImplementedError

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: ValueTracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """`evaluate`'s plots of the tracks (`scale`: the model's, one [low, high] per output)."""
        raise NotImplementedError

    def output_scores(self, block: dict, names: list[str], prefix: str) -> dict[str, float | None]:
        """The per-output scores a cross-validation summarises beside the task's `scores` of a metrics `block`
        (`prefix` "" or "track_"): none here."""
        return {}

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """A cross-validation's pooled plots of its out-of-fold `window` and `track` metrics (and value tracks)."""
        raise NotImplementedError

    def baseline_windows(self) -> list[str]:
        """baseline.csv's columns of the validation windows: seconds, then the task's scores."""
        return ["seconds", *self.scores]

    def evaluation_table(self, metrics: dict, title: str) -> Any:
        """The rich table `evaluate` prints of its `metrics` (the track scores, with their windows' as
        `window_scores` where the windows line up): here the training table of them."""
        return self.terminal_table(metrics, title)


def named(names: list[str], outputs: np.ndarray) -> dict[str, float]:
    """Each output by name, rounded to 6 decimals as predictions give them."""
    return {name: round(float(value), 6) for name, value in zip(names, outputs, strict=True)}


DEFAULT_TASK = "classification"  # what records written before tasks existed hold
