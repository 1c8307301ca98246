"""Freeze mode on cached backbone features: the frozen body runs once, then only the head trains.

With the body frozen, its BatchNorm statistics frozen (`train_bn=False`), no random layer in it and no
augmentation, the body maps every image to the same features in every epoch, so they are computed once
(body in eval mode, no gradients) and the head trains on them for all epochs. The head learner shares
the head's modules with the full model, so the trained head is already in place when it finishes and
the saved model is the full network, as in the uncached path.
"""

from __future__ import annotations

import copy
import hashlib
import random

import numpy as np
import torch
from fastai.callback.data import WeightedDL
from fastai.data.core import DataLoaders, TfmdDL
from fastai.layers import AdaptiveConcatPool2d, Flatten
from fastai.learner import Learner
from fastai.torch_core import trainable_params
from torch import nn

from ..models.folding import fold
from ..models.precision import choose, features_pass
from .callbacks import use_rich_progress
from .tensor_loaders import as_target

# Parameter-free, deterministic layers at the start of fastai's head: cached along with the body.
POOLING = (AdaptiveConcatPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, Flatten, nn.Flatten)


class Features:
    """Cached features and class indices (or regression target rows) as items of a fastai `TfmdDL`."""

    def __init__(self, features: torch.Tensor | np.ndarray, targets: torch.Tensor, vocab, split_idx: int):
        self.features, self.targets, self.vocab, self.split_idx = features, targets, vocab, split_idx

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], as_target(self.targets[index])


def is_random(module: nn.Module) -> bool:
    """Whether `module` holds a layer that is random in training mode (dropout, stochastic depth)."""
    return any(
        (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0) or getattr(m, "drop_prob", 0) > 0
        for m in module.modules()
    )


def can_cache(learn: Learner, mode: str, train_bn: bool, augment: str) -> bool:
    """Whether head-only training on cached features is exactly the freeze-mode training of `learn`."""
    return mode == "freeze" and not train_bn and augment == "none" and not is_random(learn.model[0])


def feature_network(encoder: nn.Module, precision: str, dl) -> tuple[str, nn.Module]:
    """The precision the features are computed at (`auto` resolved) and the folded `encoder` at it
    (`models.precision.choose`): int8 calibrated, and `auto` checked (`features_pass`), on the first batch of
    `dl` — the model's own training windows. The model being trained never sees this copy."""
    if precision == "fp32":
        return "fp32", fold(encoder)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    sample = next(iter(dl), None)  # iterating draws from the random state that training draws from next: kept
    random.setstate(states[0]), np.random.set_state(states[1]), torch.set_rng_state(states[2])
    if sample is None:
        return "fp32", fold(encoder)
    xb = sample[0].as_subclass(torch.Tensor)
    return choose(copy.deepcopy(encoder).eval(), precision, xb, lambda x: x, xb.device, check=features_pass)


def compute_features(network: nn.Module, key: str, dl) -> tuple[torch.Tensor, torch.Tensor]:
    """`network` outputs (no gradients, on the CPU) and targets of every batch of `dl`.

    Outputs are remembered for the process (`FeatureMemo`), keyed by `key` (the encoder's weights and the
    precision) and each input's bytes: the folds of a cross-validation, which see the same images through the
    same frozen body, compute each image's features once. `network` is the encoder folded (`models.folding`,
    the same features) at its precision (`feature_network`).
    """
    features, targets = [], []
    with torch.no_grad():
        for xb, yb in dl:
            features.append(MEMO.features(network, key, xb.as_subclass(torch.Tensor)))
            targets.append(yb.as_subclass(torch.Tensor).cpu())
    if not features:  # a refit's empty validation loader
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(features), torch.cat(targets)


class FeatureMemo:
    """Encoder outputs by (encoder weights, input bytes), up to `limit_bytes` of features (then it starts anew)."""

    def __init__(self, limit_bytes: int = 2 * 2**30):
        self.limit_bytes = limit_bytes
        self.store: dict[tuple[str, str], torch.Tensor] = {}
        self.size = 0

    @staticmethod
    def encoder_key(encoder: nn.Module) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr(encoder).encode())  # the structure too: bodies with the same weights may end elsewhere
        for name, tensor in encoder.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def features(self, encoder: nn.Module, weights: str, xb: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs (float32, CPU) for the batch `xb`, computing only those not remembered."""
        data = xb.detach().cpu().contiguous().numpy()
        keys = [(weights, hashlib.blake2b(item.tobytes(), digest_size=16).hexdigest()) for item in data]
        rows = [self.store.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            computed = encoder(xb[missing]).as_subclass(torch.Tensor).float().cpu()
            if self.size + computed.nbytes > self.limit_bytes:
                self.store.clear()
                self.size = 0
            for i, row in zip(missing, computed, strict=True):
                rows[i] = self.store[keys[i]] = row
            self.size += computed.nbytes
        return torch.stack(rows)


MEMO = FeatureMemo()


def encoded_splits(encoder: nn.Module, learn: Learner, precision: str = "fp32") -> tuple[str, tuple, tuple]:
    """The precision (`auto` resolved) and `encoder`'s (features, targets) of `learn`'s training images (in order,
    none dropped) and of its validation images, computed once at that precision."""
    train_dl = learn.dls.train.new(shuffle=False, drop_last=False)
    precision, network = feature_network(encoder, precision, train_dl)
    key = f"{MEMO.encoder_key(encoder)}:{precision}"
    return precision, compute_features(network, key, train_dl), compute_features(network, key, learn.dls.valid)


def head_learner(learn: Learner, precision: str = "fp32") -> Learner:
    """A learner that trains `learn`'s head in place on the body's features of every image, computed at
    `precision` (`--precision`; the saved model is the same full-precision network either way).

    Same loss, optimizer, weight decay, metrics, batch size and sampling as `learn`; `lr_find` and
    `fit_one_cycle` on it are those of `learn` in freeze mode without the body's repeated forward passes.
    """
    body, head = learn.model[0], learn.model[1]
    cut = 0
    while cut < len(head) and isinstance(head[cut], POOLING):
        cut += 1
    encoder = nn.Sequential(body, *head[:cut])
    precision, train, valid = encoded_splits(encoder, learn, precision)
    fitter = cached_learner(learn, nn.Sequential(*head[cut:]), train, valid)
    fitter.feature_precision = precision
    return fitter


def cached_learner(
    learn: Learner,
    model: nn.Module,
    train: tuple,
    valid: tuple,
    items: type[Features] = Features,
    train_bn: bool | None = None,
) -> Learner:
    """A learner training `model` (modules of `learn`, trained in place) on cached (inputs, targets) of the training
    and validation images, with `learn`'s loss, optimizer, weight decay, metrics, batch size and sampling."""
    train_dl, valid_dl = learn.dls.train, learn.dls.valid
    vocab = getattr(learn.dls, "vocab", None)  # a regression DataBlock has none
    common = {"num_workers": 0, "device": learn.dls.device}
    train_ds = items(*train, vocab, 0)
    if isinstance(train_dl, WeightedDL):
        train_loader = WeightedDL(train_ds, bs=train_dl.bs, wgts=train_dl.wgts, shuffle=True, drop_last=True, **common)
    else:
        train_loader = TfmdDL(train_ds, bs=train_dl.bs, shuffle=True, drop_last=True, **common)
    valid_loader = TfmdDL(items(*valid, vocab, 1), bs=valid_dl.bs, shuffle=False, **common)
    fitter = Learner(
        DataLoaders(train_loader, valid_loader, path=learn.path, device=learn.dls.device),
        model,
        loss_func=learn.loss_func,
        opt_func=learn.opt_func,
        lr=learn.lr,
        splitter=trainable_params,
        metrics=learn.metrics,
        path=learn.path,
        model_dir=learn.model_dir,
        wd=learn.wd,
        wd_bn_bias=learn.wd_bn_bias,
        train_bn=learn.train_bn if train_bn is None else train_bn,
        moms=learn.moms,
    )
    use_rich_progress(fitter)
    return fitter
