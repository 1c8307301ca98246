"""Multilabel: a set of moods per clip, each predicted where its sigmoid probability reaches the decision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Task, TaskFacts, named

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import torch

    from ..data.dataset import DatasetInfo
    from ..data.labelfiles import LabelTable
    from ..data.labelsource import LabelSource
    from ..scoring.scores import ValueTracks

MOOD_DECISION = 0.5  # a mood is predicted when its sigmoid probability reaches this


class Multilabel(Task):
    name = "multilabel"
    facts = TaskFacts(
        described="a set of moods per clip: --label-column of ';'-separated moods, or one --target per mood "
        "with 0/1 flags or vote shares",
        names_key="moods",
        learned="mood",
        column_prefix="prob",
        label_columns=("moods",),
        monitors=("macro_f1", "valid_loss"),
        scores=("micro_f1", "macro_f1", "map"),
        table_scores=("macro_f1", "micro_f1", "map"),
        baseline_estimator="mood_classifier",
        baseline_scores=("macro_f1", "map"),
        decision=MOOD_DECISION,
        per_output="per_label",
        report_errors="wrong_labels",
        plots_heading="Scores per mood",
        prediction_fields=("moods", "probabilities"),
        takes_targets=True,
        takes_threshold=True,
        labels_are_sets=True,
    )

    def default_feature(self, targets: list[str] | None) -> str:
        """A multilabel data set goes by "moods"."""
        return "moods"

    def read_labels(
        self, source: LabelSource, feature: str | None, audio_dir: str | Path, files: list[Path]
    ) -> LabelTable:
        """The moods of each clip, from a `;`-separated `--label-column` or the `--target` mood columns
        (`data.targets.read_moods`)."""
        from ..data.targets import read_moods

        return read_moods(
            source.labels, targets=source.targets, label_column=source.label_column, id_column=source.id_column,
            threshold=source.threshold, group_by=source.group_by, skip_unlabeled=source.skip_unlabeled,
        )  # fmt: skip

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Mood probabilities: a sigmoid per mood."""
        return logits.sigmoid()

    def combine(self, outputs: torch.Tensor) -> torch.Tensor:
        """The logit of the members' mean mood probabilities (a sigmoid of it gives the mean)."""
        import torch

        return torch.logit(torch.sigmoid(outputs).mean(dim=0), eps=1e-7)

    def prediction(self, names: list[str], outputs: np.ndarray, chosen: int | None = None) -> dict:
        """The moods at or above the decision (`label`: them joined by ";") and every mood's probability."""
        moods = tuple(name for name, p in zip(names, outputs, strict=True) if p >= self.facts.decision)
        return {"label": ";".join(moods), "probabilities": named(names, outputs), "moods": moods}

    def score(
        self, outputs: np.ndarray, truth: np.ndarray, clip_ids: list[str], names: list[str], aggregate: str = "mean"
    ) -> tuple[dict, ValueTracks]:
        """`score_multilabel` at the decision: `truth` 1/0 per mood, a track's probabilities its windows' mean."""
        from ..scoring.scores import score_multilabel

        return score_multilabel(outputs, truth, clip_ids, names, self.facts.decision)

    def score_rows(
        self, names: list[str], windows: list[dict], tracks: list[dict], clip_ids: list[str]
    ) -> tuple[dict, dict, ValueTracks | None]:
        """The window rows' `prob_<mood>` scored against their true moods by `score`."""
        from ..scoring.predictions import mood_flags, output_matrix

        metrics, values = self.score(output_matrix(windows, "prob", names), mood_flags(windows, names), clip_ids, names)
        return metrics, metrics["track"], values

    def fit_loss(self, loss: str, label_smoothing: float) -> Any:
        """Binary cross-entropy on each mood's logit (decided at the decision)."""
        from fastai.losses import BCEWithLogitsLossFlat

        return BCEWithLogitsLossFlat(thresh=self.facts.decision)

    def fit_metrics(self) -> list:
        """The macro-F1 over the moods at the decision."""
        from fastai.metrics import F1ScoreMulti

        macro_f1 = F1ScoreMulti(thresh=self.facts.decision, sigmoid=True, average="macro")
        macro_f1.name = "macro_f1"
        return [macro_f1]

    def target_block(self, info: DatasetInfo) -> Any:
        from fastai.data.block import MultiCategoryBlock

        return MultiCategoryBlock(encoded=True, vocab=info.targets)

    def model_record(self, info: DatasetInfo, metrics: dict) -> dict:
        """The macro-F1 and mAP."""
        return {"metrics": {key: metrics[key] for key in ("macro_f1", "map") if key in metrics}}


MULTILABEL = Multilabel()
