"""A regression's views: scatters and the circumplex, the per-target tables, the ONNX wording."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from ...runs.layout import CIRCUMPLEX_FILE, scatter_file
from ..figures import circumplex_axes, plot_value_tracks
from ..tables import cell, regression_table
from .base import TaskViews

if TYPE_CHECKING:
    from pathlib import Path

    from ...data.dataset import DatasetInfo
    from ...scoring.scores import ValueTracks


class RegressionViews(TaskViews):
    def plot_files(self, names: list[str]) -> list[tuple[str, str]]:
        """A scatter of predicted against true values per target and, with valence plus arousal or energy,
        the circumplex."""
        plots = [(scatter_file(t), f"predicted against true {t} (tracks)") for t in names]
        if circumplex_axes(names):
            plots.append((CIRCUMPLEX_FILE, "valence–arousal plane: each track's true point joined to its prediction"))
        return plots

    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: ValueTracks, info: DatasetInfo, title: str
    ) -> None:
        """A scatter of the tracks' predicted against true values per target and (valence with arousal or energy)
        the circumplex."""
        what = f"{title} — {len(tracks.ids)} tracks (mean of windows)"
        plot_value_tracks(folder, prefix, tracks.predicted, tracks.targets, list(info.targets), info.scale, what)

    def terminal_table(self, metrics: dict, title: str) -> Any:
        return regression_table(metrics, title)

    def evaluation_table(self, metrics: dict, title: str) -> Any:
        """Windows and tracks per target and their mean; a mixed-input ensemble's (no window scores): per target
        CCC, r, R², RMSE, MAE of the tracks and their mean."""
        if "window_scores" in metrics:
            return self.terminal_table({**metrics["window_scores"], "track": metrics}, title)
        keys, heads = ("ccc", "pearson_r", "r2", "rmse", "mae"), ("CCC", "r", "R²", "RMSE", "MAE")
        table = Table(title=title, title_justify="left")
        for head in ("target", *heads):
            table.add_column(head, justify="right" if head in heads else "left")
        for name, scores in metrics["per_target"].items():
            table.add_row(name, *(cell(scores[key]) for key in keys))
        table.add_section()
        table.add_row("[bold]mean", *(cell(metrics[key]) for key in keys))
        return table

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: ValueTracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """A scatter per target and, with valence plus arousal or energy, the circumplex."""
        scales = {name: list(pair) for name, pair in zip(names, scale)}
        plot_value_tracks(folder, "", tracks.predicted, tracks.targets, names, scales, title)

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """The tracks' scatters and circumplex."""
        if values is not None:
            plot_value_tracks(folder, "", values.predicted, values.targets, names, scale,
                              f"{len(values.ids)} tracks · {title}")  # fmt: skip

    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        return f"each target's value in its scale {[list(pair) for pair in scale]}" + (
            " (mean of the members')" if ensemble else ""
        )
