"""Classification: one class per clip (emotions, energy/valence/tension bins, quadrants)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Task, TaskFacts, named

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import numpy as np
    import torch

    from ..data.dataset import DatasetInfo
    from ..data.labelfiles import LabelTable
    from ..data.labelsource import LabelSource
    from ..scoring.scores import Tracks, ValueTracks


class Classification(Task):
    name = "classification"
    facts = TaskFacts(
        described="classes",
        names_key="classes",
        learned="class",
        column_prefix="prob",
        label_columns=("label",),
        monitors=("accuracy", "macro_f1", "valid_loss"),
        scores=("accuracy", "macro_f1"),
        table_scores=("accuracy", "macro_f1"),
        baseline_estimator="classifier",
        baseline_scores=("accuracy", "macro_f1"),
        chooses_one_label=True,
        refused_options=(),
        labels_are_classes=True,
        per_output="per_class",
        report_errors="mistakes",
        prediction_fields=("label", "probabilities"),
    )

    def read_labels(
        self, source: LabelSource, feature: str | None, audio_dir: str | Path, files: list[Path]
    ) -> LabelTable:
        """The classes of `feature`: from the labels file in any layout (`data.labels.read_labels`), or from the
        files' class folders without one."""
        from ..data.labels import label_table

        return label_table(
            audio_dir, files, source.labels, feature or "", group_by=source.group_by, id_column=source.id_column,
            label_column=source.label_column, cuts=source.cuts, skip_unlabeled=source.skip_unlabeled,
        )  # fmt: skip

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities: a softmax over the classes."""
        return logits.softmax(dim=1)

    def combine(self, outputs: torch.Tensor) -> torch.Tensor:
        """The log of the members' mean class probabilities (a softmax of it gives the mean)."""
        import math

        import torch

        return torch.logsumexp(torch.log_softmax(outputs, dim=2), dim=0) - math.log(len(outputs))

    def prediction(self, names: list[str], outputs: np.ndarray, chosen: int | None = None) -> dict:
        """The class chosen (default: the most likely) and every class's probability."""
        index = int(outputs.argmax()) if chosen is None else chosen
        return {"label": names[index], "probabilities": named(names, outputs)}

    def score(
        self, outputs: np.ndarray, truth: np.ndarray, clip_ids: list[str], names: list[str], aggregate: str = "mean"
    ) -> tuple[dict, Tracks]:
        """`score_windows`: `truth` class indices, a track's probabilities combined by `aggregate`."""
        from ..scoring.scores import score_windows

        return score_windows(outputs, truth, clip_ids, names, aggregate)

    def score_rows(
        self, names: list[str], windows: list[dict], tracks: list[dict], clip_ids: list[str]
    ) -> tuple[dict, dict, ValueTracks | None]:
        """`classification_metrics` of the window rows' and of the track rows' true and predicted classes."""
        from ..scoring.predictions import label_metrics

        return label_metrics(windows, names), label_metrics(tracks, names), None

    def fit_loss(self, loss: str, label_smoothing: float) -> Any:
        """Cross-entropy (fastai's default for class targets), label-smoothed by `label_smoothing` above 0."""
        if not label_smoothing:
            return None
        from fastai.losses import LabelSmoothingCrossEntropyFlat

        return LabelSmoothingCrossEntropyFlat(eps=label_smoothing)

    def fit_metrics(self) -> list:
        """Accuracy and the macro-F1 over the classes."""
        from fastai.metrics import F1Score, accuracy

        macro_f1 = F1Score(average="macro")
        macro_f1.name = "macro_f1"
        return [accuracy, macro_f1]

    def target_block(self, info: DatasetInfo) -> Any:
        from fastai.data.block import CategoryBlock

        return CategoryBlock(vocab=info.classes)

    def label_reader(self, values: Callable[[], dict[Path, list[float]]]) -> Callable[[Path], Any]:
        """An image's class: its folder's name."""
        from fastai.data.transforms import parent_label

        return parent_label

    def target_tensor(self, labels: list, info: DatasetInfo) -> tuple[torch.Tensor, Any]:
        """Class indices of the data set's classes."""
        import torch
        from fastai.data.transforms import CategoryMap

        lookup = {name: i for i, name in enumerate(info.classes)}
        return torch.tensor([lookup[label] for label in labels]), CategoryMap(info.classes, sort=False)

    def output_names(self, info: DatasetInfo, vocab: Callable[[], list[str]]) -> list[str]:
        """The loaders' classes."""
        return list(vocab())

    def unvalidated(self, rows: list, names: list[str]) -> list[str]:
        """Classes with training images but none for validation."""
        valid = {row.label for row in rows if row.split == "valid"}
        return [name for name in names if name not in valid]

    def check_test_set(self, info: DatasetInfo, other: DatasetInfo, where: str) -> None:
        """Its classes."""
        from ..errors import MerError

        if other.classes != info.classes:
            raise MerError(
                f"{where}: its classes ({', '.join(other.classes)}) differ from the training data set's "
                f"({', '.join(info.classes)}); prepare it with the same --feature and labels"
            )

    def model_record(self, info: DatasetInfo, metrics: dict) -> dict:
        """Accuracy and macro-F1, and the rating cut points of a 3-level feature."""
        cuts = info.settings.get("cuts")
        return {
            "metrics": {key: metrics[key] for key in ("accuracy", "macro_f1") if key in metrics},  # none: a refit
            "cuts": tuple(cuts) if cuts is not None else None,
        }

    def split_truth(self, rows: list, names: list[str]) -> np.ndarray:
        import numpy as np

        index = {name: i for i, name in enumerate(names)}
        return np.array([index[row.label] for row in rows], dtype=np.int64)


CLASSIFICATION = Classification()
