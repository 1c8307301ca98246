"""A classifier's views: confusion matrices, the classification report, the class table, the ONNX wording."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._plumbing.files import atomic_write
from ...runs.layout import CONFUSION_FILE, REPORT_FILE, TRACK_CONFUSION_FILE
from ...scoring.metrics import text_report
from ..figures import plot_confusion
from ..tables import summary_table
from .base import TaskViews

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from ...data.dataset import DatasetInfo
    from ...scoring.scores import Tracks, ValueTracks


class ClassificationViews(TaskViews):
    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: Tracks, info: DatasetInfo, title: str
    ) -> None:
        """The tracks' confusion matrix."""
        what = f"{scores['n_tracks']} tracks ({scores['aggregate']} of windows)"
        plot_confusion(folder / (prefix + TRACK_CONFUSION_FILE), scores["track"]["confusion_matrix"],
                       scores["classes"], f"{title} — {what}")  # fmt: skip

    def write_windows(
        self, folder: Path, truth: np.ndarray, outputs: np.ndarray, tracks: Tracks, scores: dict, title: str
    ) -> None:
        """classification_report.txt (the windows' report, then the tracks') and the windows' confusion matrix."""
        classes = scores["classes"]
        windows = text_report(truth, outputs.argmax(axis=1), classes)
        tracked = text_report(tracks.targets, tracks.predicted, classes)
        atomic_write(folder / REPORT_FILE, f"windows\n\n{windows}\ntracks\n\n{tracked}")
        plot_confusion(folder / CONFUSION_FILE, scores["confusion_matrix"], classes, f"{title} — windows")

    def terminal_table(self, metrics: dict, title: str) -> Any:
        return summary_table(metrics, title)

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: Tracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """The tracks' classification report and confusion matrix."""
        atomic_write(folder / REPORT_FILE, text_report(tracks.targets, tracks.predicted, names))
        plot_confusion(folder / CONFUSION_FILE, metrics["confusion_matrix"], names, title)

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """The confusion matrices of the windows and of the tracks."""
        plot_confusion(folder / CONFUSION_FILE, window["confusion_matrix"], names, f"windows · {title}")
        plot_confusion(folder / TRACK_CONFUSION_FILE, track["confusion_matrix"], names, f"tracks · {title}")

    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        return "log mean member probabilities (softmax gives the mean)" if ensemble else "logits"
