"""Regression: continuous targets per clip (valence, energy, tension ratings), each on its own scale."""

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


class Regression(Task):
    name = "regression"
    names_key = "targets"
    learned = None
    column_prefix = "pred"
    label_columns = ()
    monitors = ("ccc", "valid_loss")
    scores = ("ccc", "pearson_r", "r2", "rmse", "mae")
    table_scores = ("ccc", "r2", "rmse")
    baseline_estimator = "regressor"
    baseline_scores = ("ccc", "rmse")
    takes_loss = True
    per_output = "per_target"
    report_errors = "largest_errors"
    plots_heading = "Predicted against true values"
    prediction_fields = ("values",)
    predicts_values = True
    takes_targets = True
    reads_label_column = False
    checks_outliers = True

    def read_labels(
        self, source: LabelSource, feature: str | None, audio_dir: str | Path, files: list[Path]
    ) -> LabelTable:
        """The numeric `--target` columns of the labels file (`data.targets.read_targets`)."""
        from ..data.targets import read_targets

        return read_targets(
            source.labels, list(source.targets or []), id_column=source.id_column, group_by=source.group_by,
            skip_unlabeled=source.skip_unlabeled, allow_outliers=source.allow_outliers,
        )  # fmt: skip

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """The values as they are (the head already squeezes them into each target's scale)."""
        return logits

    def combine(self, outputs: torch.Tensor) -> torch.Tensor:
        """The members' mean values."""
        return outputs.mean(dim=0)

    def prediction(self, names: list[str], outputs: np.ndarray, chosen: int | None = None) -> dict:
        """A value per target (no label, no probabilities)."""
        return {"label": "", "probabilities": {}, "values": named(names, outputs)}

    def describe(self, names: list[str], outputs: np.ndarray) -> str:
        """`target=value` pairs joined by ";"."""
        return ";".join(f"{name}={value:.3f}" for name, value in zip(names, outputs, strict=True))

    def onnx_outputs(self, scale: tuple[tuple[float, float], ...], ensemble: bool) -> str:
        return f"each target's value in its scale {[list(pair) for pair in scale]}" + (
            " (mean of the members')" if ensemble else ""
        )

    def plot_files(self, names: list[str]) -> list[tuple[str, str]]:
        """A scatter of predicted against true values per target and, with valence plus arousal or energy,
        the circumplex."""
        from ..report.figures import circumplex_axes
        from ..runs.layout import CIRCUMPLEX_FILE, scatter_file

        plots = [(scatter_file(t), f"predicted against true {t} (tracks)") for t in names]
        if circumplex_axes(names):
            plots.append((CIRCUMPLEX_FILE, "valence–arousal plane: each track's true point joined to its prediction"))
        return plots

    def score(
        self, outputs: np.ndarray, truth: np.ndarray, clip_ids: list[str], names: list[str], aggregate: str = "mean"
    ) -> tuple[dict, ValueTracks]:
        """`score_regression`: `truth` the target values, a track's prediction the mean of its windows'."""
        from ..scoring.scores import score_regression

        return score_regression(outputs, truth, clip_ids, names)

    def score_rows(
        self, names: list[str], windows: list[dict], tracks: list[dict], clip_ids: list[str]
    ) -> tuple[dict, dict, ValueTracks | None]:
        """The window rows' `pred_<target>` scored against their `true_<target>` by `score`."""
        from ..scoring.predictions import output_matrix

        metrics, values = self.score(output_matrix(windows, "pred", names), output_matrix(windows, "true", names),
                                     clip_ids, names)  # fmt: skip
        return metrics, metrics["track"], values

    def write_predictions(
        self, folder: Path, prefix: str, rows: list, outputs: np.ndarray, tracks: ValueTracks, names: list[str]
    ) -> tuple[Path, Path]:
        """Windows and tracks: `true_<target>` and `pred_<target>`."""
        from ..runs.layout import prediction_files
        from ..scoring.predictions import write_value_predictions, write_value_tracks

        windows, track_file = prediction_files(folder, prefix)
        write_value_predictions(windows, rows, outputs, names)
        return windows, write_value_tracks(track_file, rows, tracks, names)

    def fit_loss(self, loss: str, label_smoothing: float) -> Any:
        """MSE (`--loss mse` or auto) or `CCCLoss` (`--loss ccc`)."""
        if loss == "ccc":
            return CCCLoss()
        from fastai.losses import MSELossFlat

        return MSELossFlat()

    def fit_metrics(self) -> list:
        """The mean CCC over the targets."""
        from fastai.metrics import AccumMetric

        return [AccumMetric(ccc, flatten=False)]

    def target_block(self, info: DatasetInfo) -> Any:
        from fastai.data.block import RegressionBlock

        return RegressionBlock(n_out=len(info.targets))

    def track_columns(self, names: list[str]) -> list[str]:
        """`true_<target>` and `pred_<target>` per target."""
        return [f"{k}_{n}" for n in names for k in ("true", "pred")]

    def track_cells(self, names: list[str], true: np.ndarray, predicted: np.ndarray) -> list[str]:
        return [f"{v:.6f}" for pair in zip(true, predicted) for v in pair]

    def plot_evaluation(
        self, folder: Path, metrics: dict, tracks: ValueTracks, names: list[str], scale: tuple, title: str
    ) -> None:
        """A scatter per target and, with valence plus arousal or energy, the circumplex."""
        from ..report.figures import plot_value_tracks

        scales = {name: list(pair) for name, pair in zip(names, scale)}
        plot_value_tracks(folder, "", tracks.predicted, tracks.targets, names, scales, title)

    def output_scores(self, block: dict, names: list[str], prefix: str) -> dict[str, float | None]:
        """Each score per target (`ccc_valence`, `track_rmse_energy`, ...)."""
        per_target = block["per_target"]
        return {f"{prefix}{key}_{t}": per_target[t][key] for t in names for key in self.scores}

    def plot_pooled(
        self, folder: Path, window: dict, track: dict, values: ValueTracks | None, names: list[str], scale: dict,
        title: str,
    ) -> None:  # fmt: skip
        """The tracks' scatters and circumplex."""
        from ..report.figures import plot_value_tracks

        if values is not None:
            plot_value_tracks(folder, "", values.predicted, values.targets, names, scale,
                              f"{len(values.ids)} tracks · {title}")  # fmt: skip

    def output_scale(self, info: DatasetInfo) -> list[list[float]] | None:
        """Each target's recorded scale."""
        return [info.scale[name] for name in info.targets]

    def model_record(self, info: DatasetInfo, metrics: dict) -> dict:
        """The CCC and RMSE, and each target's scale."""
        scale = tuple(tuple(pair) for pair in self.output_scale(info))
        return {"metrics": {key: metrics[key] for key in ("ccc", "rmse") if key in metrics}, "scale": scale}

    def plot_split(
        self, folder: Path, prefix: str, scores: dict, tracks: ValueTracks, info: DatasetInfo, title: str
    ) -> None:
        """A scatter of the tracks' predicted against true values per target and (valence with arousal or energy)
        the circumplex."""
        from ..report.figures import plot_value_tracks

        what = f"{title} — {len(tracks.ids)} tracks (mean of windows)"
        plot_value_tracks(folder, prefix, tracks.predicted, tracks.targets, list(info.targets), info.scale, what)

    def terminal_table(self, metrics: dict, title: str) -> Any:
        from ..report.tables import regression_table

        return regression_table(metrics, title)

    def evaluation_table(self, metrics: dict, title: str) -> Any:
        """Windows and tracks per target and their mean; a mixed-input ensemble's (no window scores): per target
        CCC, r, R², RMSE, MAE of the tracks and their mean."""
        if "window_scores" in metrics:
            return self.terminal_table({**metrics["window_scores"], "track": metrics}, title)
        from rich.table import Table

        from ..report.tables import cell

        keys, heads = ("ccc", "pearson_r", "r2", "rmse", "mae"), ("CCC", "r", "R²", "RMSE", "MAE")
        table = Table(title=title, title_justify="left")
        for head in ("target", *heads):
            table.add_column(head, justify="right" if head in heads else "left")
        for name, scores in metrics["per_target"].items():
            table.add_row(name, *(cell(scores[key]) for key in keys))
        table.add_section()
        table.add_row("[bold]mean", *(cell(metrics[key]) for key in keys))
        return table


def ccc(preds: torch.Tensor, targs: torch.Tensor) -> torch.Tensor:
    """Mean over targets (columns) of the concordance correlation coefficient
    2·cov / (var_p + var_t + (mean_p − mean_t)²), population moments (tensor methods only: no torch import)."""
    preds, targs = preds.float().reshape(len(preds), -1), targs.float().reshape(len(targs), -1)
    mean_p, mean_t = preds.mean(0), targs.mean(0)
    cov = ((preds - mean_p) * (targs - mean_t)).mean(0)
    denominator = preds.var(0, unbiased=False) + targs.var(0, unbiased=False) + (mean_p - mean_t) ** 2
    return (2 * cov / denominator.clamp_min(1e-12)).mean()


class CCCLoss:
    """1 − mean CCC over the targets of a batch (the AVEC/MediaEval objective)."""

    def __call__(self, preds: torch.Tensor, targs: torch.Tensor) -> torch.Tensor:
        return 1 - ccc(preds, targs)


REGRESSION = Regression()
