"""Multilabel: a set of moods per clip, each predicted where its sigmoid probability reaches the decision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Task, named

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
    names_key = "moods"
    learned = "mood"
    column_prefix = "prob"
    label_columns = ("moods",)
    monitors = ("macro_f1", "valid_loss")
    scores = ("micro_f1", "macro_f1", "map")
    table_scores = ("macro_f1", "micro_f1", "map")
    baseline_estimator = "mood_classifier"
    baseline_scores = ("macro_f1", "map")
    decision = MOOD_DECISION
    per_output = "per_label"
    report_errors = "wrong_labels"
    plots_heading = "Scores per mood"
    prediction_fields = ("moods", "probabilities")
    takes_targets = True
    takes_threshold = True
    labels_are_sets = True

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
        moods = tuple(name for name, p in zip(names, outputs, strict=True) if p >= self.decision)
        return {"label": ";".join(moods), "probabilities": named(names, outputs), "moods": moods}

    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        return "mood logits (sigmoid gives each mood's probability" + (
            ", the mean of the members')" if ensemble else f"; a mood holds at {self.decision:g})"
        )

    def plot_files(self, names: list[str]) -> list[tuple[str, str]]:
        """Precision, recall, F1 and AP per mood in one bar chart."""
        from ..runs.layout import LABELS_FILE

        return [(LABELS_FILE, "precision, recall, F1 and AP per mood (windows)")]

    def score(
        self, outputs: np.ndarray, truth: np.ndarray, clip_ids: list[str], names: list[str], aggregate: str = "mean"
    ) -> tuple[dict, ValueTracks]:
        """`score_multilabel` at the decision: `truth` 1/0 per mood, a track's probabilities its windows' mean."""
        from ..scoring.scores import score_multilabel

        return score_multilabel(outputs, truth, clip_ids, names, self.decision)

    def score_rows(
        self, names: list[str], windows: list[dict], tracks: list[dict], clip_ids: list[str]
    ) -> tuple[dict, dict, ValueTracks | None]:
        """The window rows' `prob_<mood>` scored against their true moods by `score`."""
        from ..scoring.predictions import mood_flags, output_matrix

        metrics, values = self.score(output_matrix(windows, "prob", names), mood_flags(windows, names), clip_ids, names)
        return metrics, metrics["track"], values

    def write_predictions(
        self, folder: Path, prefix: str, rows: list, outputs: np.ndarray, tracks: ValueTracks, names: list[str]
    ) -> tuple[Path, Path]:
        """Windows and tracks: the true and the predicted moods (`;`-separated) and `prob_<mood>`."""
        from ..runs.layout import prediction_files
        from ..scoring.predictions import write_mood_predictions

        windows, track_file = prediction_files(folder, prefix)
        write_mood_predictions(windows, rows, outputs, names, self.decision)
        return windows, write_mood_predictions(track_file, rows, outputs, names, self.decision, tracks)

    def fit_loss(self, loss: str, label_smoothing: float) -> Any:
        """Binary cross-entropy on each mood's logit (decided at the decision)."""
        from fastai.losses import BCEWithLogitsLossFlat

        return BCEWithLogitsLossFlat(thresh=self.decision)

    def fit_metrics(self) -> list:
        """The macro-F1 over the moods at the decision."""
        from fastai.metrics import F1ScoreMulti

        macro_f1 = F1ScoreMulti(thresh=self.decision, sigmoid=True, average="macro")
        macro_f1.name = "macro_f1"
        return [macro_f1]

    def target_block(self, info: DatasetInfo) -> Any:
        from fastai.data.block import MultiCategoryBlock

        return MultiCategoryBlock(encoded=True, vocab=info.targets)

    def track_columns(self, names: list[str]) -> list[str]:
        """The true and the predicted moods, and `prob_<mood>`."""
        return ["true", "predicted", *self.columns(names)]

    def track_cells(self, names: list[str], true: np.ndarray, predicted: np.ndarray) -> list[str]:
        """The true moods, those predicted at the decision, and each mood's probability."""
        return [";".join(m for m, t in zip(names, true) if t), self.describe(names, predicted),
                *(f"{p:.6f}" for p in predicted)]  # fmt: skip

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: ValueTracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """Precision, recall, F1 and AP per mood."""
        from ..report.figures import plot_label_bars
        from ..runs.layout import LABELS_FILE

        plot_label_bars(folder / LABELS_FILE, metrics["per_label"], title)

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """Precision, recall, F1 and AP per mood of the windows."""
        from ..report.figures import plot_label_bars
        from ..runs.layout import LABELS_FILE

        plot_label_bars(folder / LABELS_FILE, window["per_label"], f"windows · {title}")

    def model_record(self, info: DatasetInfo, metrics: dict) -> dict:
        """The macro-F1 and mAP."""
        return {"metrics": {key: metrics[key] for key in ("macro_f1", "map") if key in metrics}}

    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: ValueTracks, info: DatasetInfo, title: str
    ) -> None:
        """Precision, recall, F1 and AP per mood (windows)."""
        from ..report.figures import plot_label_bars
        from ..runs.layout import LABELS_FILE

        plot_label_bars(folder / (prefix + LABELS_FILE), scores["per_label"], f"{title} — windows")

    def terminal_table(self, metrics: dict, title: str) -> Any:
        from ..report.tables import multilabel_table

        return multilabel_table(metrics, title)

    def evaluation_table(self, metrics: dict, title: str) -> Any:
        """Moods of the windows, F1 and mAP of windows and tracks; a mixed-input ensemble's (no window scores): per
        mood precision, recall, F1, AP, support and micro/macro F1 and mAP of the tracks."""
        if "window_scores" in metrics:
            block = {**metrics["window_scores"], "n_windows": metrics["n_windows"], "n_tracks": metrics["n_tracks"]}
            return self.terminal_table({**block, "track": metrics}, title)
        from rich.table import Table

        from ..report.tables import cell

        heads = ("precision", "recall", "F1", "AP", "support")
        table = Table(title=title, title_justify="left")
        for head in ("mood", *heads):
            table.add_column(head, justify="right" if head in heads else "left")
        for name, scores in metrics["per_label"].items():
            cells = (cell(scores[key]) for key in ("precision", "recall", "f1", "ap"))
            table.add_row(name, *cells, str(scores["support"]))
        table.add_section()
        for key, name in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("map", "mAP")):
            table.add_row(f"[bold]{name}", "", "", cell(metrics[key]), "", str(metrics["n_tracks"]))
        return table


MULTILABEL = Multilabel()
