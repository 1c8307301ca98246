"""Regression: continuous targets per clip (valence, energy, tension ratings), each on its own scale."""

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


class Regression(Task):
    name = "regression"
    facts = TaskFacts(
        described="numeric --target columns; implied by --target",
        names_key="targets",
        learned=None,
        column_prefix="pred",
        label_columns=(),
        monitors=("ccc", "valid_loss"),
        scores=("ccc", "pearson_r", "r2", "rmse", "mae"),
        table_scores=("ccc", "r2", "rmse"),
        baseline_estimator="regressor",
        baseline_scores=("ccc", "rmse"),
        takes_loss=True,
        per_output="per_target",
        report_errors="largest_errors",
        plots_heading="Predicted against true values",
        prediction_fields=("values",),
        predicts_values=True,
        takes_targets=True,
        reads_label_column=False,
        checks_outliers=True,
    )

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

    def output_scores(self, block: dict, names: list[str], prefix: str) -> dict[str, float | None]:
        """Each score per target (`ccc_valence`, `track_rmse_energy`, ...)."""
        per_target = block["per_target"]
        return {f"{prefix}{key}_{t}": per_target[t][key] for t in names for key in self.facts.scores}

    def output_scale(self, info: DatasetInfo) -> list[list[float]] | None:
        """Each target's recorded scale."""
        return [info.scale[name] for name in info.targets]

    def model_record(self, info: DatasetInfo, metrics: dict) -> dict:
        """The CCC and RMSE, and each target's scale."""
        scale = tuple(tuple(pair) for pair in self.output_scale(info))
        return {"metrics": {key: metrics[key] for key in ("ccc", "rmse") if key in metrics}, "scale": scale}


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
