"""A fastai `vision_learner` for any table architecture, in freeze or whole mode."""

from __future__ import annotations

from pathlib import Path

from fastai.callback.training import BnFreeze
from fastai.learner import Learner
from fastai.metrics import F1Score, accuracy
from fastai.vision.learner import default_split, model_meta, vision_learner

from .archs import ArchSpec
from .callbacks import use_rich_progress
from .choices import MODES
from .errors import MerError
from .weights import IMAGENET, NONE, model_factory, transfer_weights


def build_learner(dls, spec: ArchSpec, weights: str, path: str | Path, train_bn: bool = False) -> Learner:
    """Body from the table's cut, a fastai head for the data's classes, starting weights applied."""
    macro_f1 = F1Score(average="macro")
    macro_f1.name = "macro_f1"
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
            n_out=len(dls.vocab),
            metrics=[accuracy, macro_f1],
            path=path,
            train_bn=train_bn,
        )
    finally:
        del model_meta[create]
    use_rich_progress(learn)
    if weights not in (IMAGENET, NONE):
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
