"""The fastai `Learner` of a training run: the one network builder's model (`models.modelfile.create_model`),
the task's loss and metrics, in freeze or whole mode.

A regression learner's head ends in `TargetRange` (fastai's `sigmoid_range`, with each target's own
[low, high] scale), trains with MSE or the CCC loss and reports the mean CCC over the targets. A multilabel
learner has one logit per mood, trains with BCE on logits and reports the macro-F1 over the moods at the
task's decision threshold (0.5 on each mood's sigmoid probability). Nothing is written into fastai's globals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastai.callback.training import BnFreeze
from fastai.learner import Learner
from fastai.vision.learner import default_split

from ..bounds import quote
from ..choices import MODES, STARTING_WEIGHTS
from ..errors import MerError
from ..models.archs import ArchSpec
from ..models.modelfile import create_model
from ..models.weights import model_factory, transfer_weights
from ..tasks.base import Task
from ..tasks.registry import DEFAULT
from .callbacks import use_rich_progress
from .partial import partial_groups


def build_learner(
    dls,
    spec: ArchSpec,
    weights: str,
    path: str | Path,
    train_bn: bool = False,
    *,
    task: Task = DEFAULT,
    scale: Sequence[Sequence[float]] | None = None,
    loss: str = "auto",
    label_smoothing: float = 0.0,
) -> Learner:
    """Body from the table's cut and a fastai head with one output per class of `dls` (or per target or mood
    of a `task` with targets), starting `weights` applied; `scale`: the targets' [low, high], which the head
    squeezes its outputs into. The loss is the task's (`--loss`, `--label-smoothing`), the split into body and
    head fastai's default, as `vision_learner` makes it."""
    model = create_model(spec, len(scale) if scale else len(dls.vocab), scale, model_factory(spec, weights))
    if weights not in STARTING_WEIGHTS:  # an earlier run's model file
        transfer_weights(model, weights, spec.name)
    learn = Learner(
        dls,
        model,
        loss_func=task.fit_loss(loss, label_smoothing),
        splitter=default_split,
        metrics=task.fit_metrics(),
        path=path,
        train_bn=train_bn,
    )
    use_rich_progress(learn)
    return learn


def set_mode(learn: Learner, mode: str, train_bn: bool = False) -> None:
    """`freeze`: only the head learns (BatchNorm statistics frozen too unless `train_bn`); `whole`: all layers;
    `partial`: the body's prefix (`models.prefix.split_body`) is frozen, its rest and the head learn."""
    if mode not in MODES:
        raise MerError(f"unknown mode {quote(mode)}; choose {', '.join(MODES)}")
    learn.train_bn = train_bn
    learn.opt = None  # the optimizer records train_bn when created: make it anew
    if mode == "partial":
        partial_groups(learn)
    else:
        learn.splitter = default_split
    if mode in ("freeze", "partial"):
        learn.freeze()
        if not train_bn and not any(isinstance(cb, BnFreeze) for cb in learn.cbs):
            learn.add_cb(BnFreeze())
    else:
        learn.unfreeze()
        learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, BnFreeze)])
