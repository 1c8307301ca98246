"""A fastai `vision_learner` for any table architecture, in freeze or whole mode, classifying or regressing.

A regression learner ends its head in `TargetRange` (fastai's `sigmoid_range`, with each target's own
[low, high] scale), trains with MSE or the CCC loss and reports the mean CCC over the targets. A multilabel
learner has one logit per mood, trains with BCE on logits and reports the macro-F1 over the moods at the
decision threshold `MOOD_DECISION` (0.5 on each mood's sigmoid probability).
"""

from __future__ import annotations

from pathlib import Path

import torch
from fastai.callback.training import BnFreeze
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, LabelSmoothingCrossEntropyFlat, MSELossFlat
from fastai.metrics import AccumMetric, F1Score, F1ScoreMulti, accuracy
from fastai.vision.learner import default_split, model_meta, vision_learner

from ..choices import MODES
from ..errors import MerError
from ..models.archs import ArchSpec
from ..models.modelfile import TargetRange
from ..models.modelmeta import MOOD_DECISION
from ..models.weights import IMAGENET, NONE, PRETRAINED, model_factory, transfer_weights
from .callbacks import use_rich_progress


def ccc(preds: torch.Tensor, targs: torch.Tensor) -> torch.Tensor:
    """Mean over targets (columns) of the concordance correlation coefficient
    2·cov / (var_p + var_t + (mean_p − mean_t)²), population moments."""
    preds, targs = preds.float().reshape(len(preds), -1), targs.float().reshape(len(targs), -1)
    mean_p, mean_t = preds.mean(0), targs.mean(0)
    cov = ((preds - mean_p) * (targs - mean_t)).mean(0)
    denominator = preds.var(0, unbiased=False) + targs.var(0, unbiased=False) + (mean_p - mean_t) ** 2
    return (2 * cov / denominator.clamp_min(1e-12)).mean()


class CCCLoss:
    """1 − mean CCC over the targets of a batch (the AVEC/MediaEval objective)."""

    def __call__(self, preds: torch.Tensor, targs: torch.Tensor) -> torch.Tensor:
        return 1 - ccc(preds, targs)


def regression_loss(name: str):
    """The loss of a regression run: `mse` (also `auto`) or `ccc`."""
    return CCCLoss() if name == "ccc" else MSELossFlat()


def build_learner(
    dls,
    spec: ArchSpec,
    weights: str,
    path: str | Path,
    train_bn: bool = False,
    scale: list[list[float]] | None = None,
    loss: str = "auto",
    moods: list[str] | None = None,
    label_smoothing: float = 0.0,
) -> Learner:
    """Body from the table's cut, a fastai head for the data's classes (cross-entropy, label-smoothed by
    `label_smoothing` when above 0; or, given the targets' `scale`, one output per target ending in
    `TargetRange`, trained with `loss`; or, given `moods`, one logit per mood), starting weights applied."""
    if moods:
        macro_f1 = F1ScoreMulti(thresh=MOOD_DECISION, sigmoid=True, average="macro")
        macro_f1.name = "macro_f1"
        metrics, extra = [macro_f1], {"n_out": len(moods), "loss_func": BCEWithLogitsLossFlat(thresh=MOOD_DECISION)}
    elif scale:
        metrics, extra = [AccumMetric(ccc, flatten=False)], {"n_out": len(scale), "loss_func": regression_loss(loss)}
    else:
        macro_f1 = F1Score(average="macro")
        macro_f1.name = "macro_f1"
        metrics, extra = [accuracy, macro_f1], {"n_out": len(dls.vocab)}
        if label_smoothing:
            extra["loss_func"] = LabelSmoothingCrossEntropyFlat(eps=label_smoothing)
    create = model_factory(spec, weights)
    # vision_learner reads cut/split from fastai's model_meta (it drops its own `cut` argument for
    # archs it does not know), so the table entry is lent to model_meta while the learner is built.
    model_meta[create] = {"cut": spec.cut, "split": default_split, "stats": spec.stats}
    try:
        learn = vision_learner(
            dls,
            create,
            normalize=False,  # load_dataloaders normalises with the table's stats, pretrained or not
            pretrained=False,  # weights are the factory's job; False keeps fastai from freezing by itself
            metrics=metrics,
            path=path,
            train_bn=train_bn,
            **extra,
        )
    finally:
        del model_meta[create]
    if scale:
        learn.model[1].append(TargetRange(scale))
    use_rich_progress(learn)
    if weights not in (PRETRAINED, IMAGENET, NONE):
        transfer_weights(learn.model, weights, spec.name)
    return learn


def set_mode(learn: Learner, mode: str, train_bn: bool = False) -> None:
    """`freeze`: only the head learns (BatchNorm statistics frozen too unless `train_bn`); `whole`: all layers."""
    if mode not in MODES:
        raise MerError(f"unknown mode {mode!r}; choose freeze or whole")
    learn.train_bn = train_bn
    learn.opt = None  # the optimizer records train_bn when created: make it anew
    if mode == "freeze":
        learn.freeze()
        if not train_bn and not any(isinstance(cb, BnFreeze) for cb in learn.cbs):
            learn.add_cb(BnFreeze())
    else:
        learn.unfreeze()
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, BnFreeze)])
