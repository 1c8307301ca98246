"""How a task's results are shown: the views every task has, with the defaults most tasks share.

A task (`tasks.base.Task`) holds its facts and its maths; its views (`TaskViews`, found for it by
`report.views.registry.views_of`, as fastai's `show` methods are found by the type of what they show) draw its
plots, build its terminal tables and word its ONNX outputs. Its prediction CSVs are run-folder data, laid out by
`runs.predictions.layout_of(task)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from ...data.dataset import DatasetInfo
    from ...scoring.scores import Tracks, ValueTracks
    from ...tasks.base import Task

__all__ = ["TaskViews"]


class TaskViews:
    """The views of one task object (`self.task`); a subclass per task fills in the ones without a default."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def __repr__(self) -> str:
        return f"<views of {self.task.name}>"

    # plots and tables
    def plot_files(self, names: list[str]) -> list[tuple[str, str]]:
        """The task's own plots in a run folder for the outputs `names`, as (file name, caption): none here."""
        return []

    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: Tracks | ValueTracks, info: DatasetInfo, title: str
    ) -> None:
        """The plots of one scored split of a training run (`prefix` "" or the test prefix)."""
        raise NotImplementedError

    def write_windows(
        self, folder: Path, truth: np.ndarray, outputs: np.ndarray, tracks: Tracks | ValueTracks, scores: dict,
        title: str,
    ) -> None:  # fmt: skip
        """A training run's files about all its validation windows: none here."""

    def terminal_table(self, metrics: dict, title: str) -> Any:
        """The rich table `train` prints of a finished run's `metrics`."""
        raise NotImplementedError

    def evaluation_table(self, metrics: dict, title: str) -> Any:
        """The rich table `evaluate` prints of its `metrics` (the track scores, with their windows' as
        `window_scores` where the windows line up): here the training table of them."""
        return self.terminal_table(metrics, title)

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: Tracks | ValueTracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """`evaluate`'s plots and reports of the tracks (`scale`: the model's, one [low, high] per output)."""
        raise NotImplementedError

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """A cross-validation's pooled plots of its out-of-fold `window` and `track` metrics (and value tracks)."""
        raise NotImplementedError

    # export and the classic baseline
    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        """What an exported ONNX model's `logits` output holds (an ensemble's: of its members')."""
        raise NotImplementedError
