"""A multilabel task's views: per-mood bars, the mood tables, the ONNX wording."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from ...runs.layout import LABELS_FILE
from ..figures import plot_label_bars
from ..tables import cell, multilabel_table
from .base import TaskViews

if TYPE_CHECKING:
    from pathlib import Path

    from ...data.dataset import DatasetInfo
    from ...scoring.scores import ValueTracks


class MultilabelViews(TaskViews):
    def plot_files(self, names: list[str]) -> list[tuple[str, str]]:
        """Precision, recall, F1 and AP per mood in one bar chart."""
        return [(LABELS_FILE, "precision, recall, F1 and AP per mood (windows)")]

    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: ValueTracks, info: DatasetInfo, title: str
    ) -> None:
        """Precision, recall, F1 and AP per mood (windows)."""
        plot_label_bars(folder / (prefix + LABELS_FILE), scores["per_label"], f"{title} — windows")

    def terminal_table(self, metrics: dict, title: str) -> Any:
        return multilabel_table(metrics, title)

    def evaluation_table(self, metrics: dict, title: str) -> Any:
        """Moods of the windows, F1 and mAP of windows and tracks; a mixed-input ensemble's (no window scores): per
        mood precision, recall, F1, AP, support and micro/macro F1 and mAP of the tracks."""
        if "window_scores" in metrics:
            block = {**metrics["window_scores"], "n_windows": metrics["n_windows"], "n_tracks": metrics["n_tracks"]}
            return self.terminal_table({**block, "track": metrics}, title)
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

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: ValueTracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """Precision, recall, F1 and AP per mood."""
        plot_label_bars(folder / LABELS_FILE, metrics["per_label"], title)

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """Precision, recall, F1 and AP per mood of the windows."""
        plot_label_bars(folder / LABELS_FILE, window["per_label"], f"windows · {title}")

    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        return "mood logits (sigmoid gives each mood's probability" + (
            ", the mean of the members')" if ensemble else f"; a mood holds at {self.task.facts.decision:g})"
        )
