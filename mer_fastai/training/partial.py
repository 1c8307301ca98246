"""`--mode partial`: the body's prefix frozen and its outputs cached on disk; the rest of the body and the head learn.

The learner's layer groups become (prefix, rest + head) and fastai's `freeze` freezes the first: the prefix's
weights and, unless `--train-bn`, its BatchNorm statistics (`BnFreeze` keeps it in eval mode) stay as they
were. With no random layer in the prefix and no augmentation, the prefix maps every image to the same output in
every epoch, so `prefix_learner` runs it once over the images (eval mode, no gradients) into memory-mapped
`.npy` files in the run's scratch folder and trains `rest + head` on them: the same training without the
prefix's repeated forward passes. The trained modules are the full model's, so the saved model is the whole
network (prefix + trained rest), which predict, evaluate, export and embed load unchanged.

Size: one float32 prefix output per window; musicnn's front end gives 561 × 187 values per 3 s patch,
about 0.42 MB (a data set of 5 000 training and validation patches: 2.1 GB on disk, read as needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fastai.learner import Learner
from torch import nn

from ..models.prefix import BodySplit, split_body
from .feature_cache import Features, cached_learner, is_random
from .tensor_loaders import as_target

__all__ = ["partial_groups", "can_cache_prefix", "prefix_learner"]

CACHE_DIR = "prefix-cache"  # inside the learner's scratch folder (`learn.path / learn.model_dir`), removed with it


def body_split(learn: Learner) -> BodySplit:
    """The learner's body cut into prefix and rest (one clear error when the architecture cannot be cut)."""
    return split_body(learn.model[0])


def partial_groups(learn: Learner) -> None:
    """Make the learner's layer groups (prefix, rest of the body + head), for fastai's `freeze` to freeze the prefix."""
    body_split(learn)  # refuse an architecture that cannot be cut before anything trains

    def splitter(model: nn.Module) -> list[list[nn.Parameter]]:
        split = split_body(model[0])
        return [list(split.prefix.parameters()), [*split.rest.parameters(), *model[1].parameters()]]

    learn.splitter = splitter


def can_cache_prefix(learn: Learner, train_bn: bool, augment: str) -> bool:
    """Whether training `rest + head` on cached prefix outputs is exactly the partial training of `learn`."""
    return not train_bn and augment == "none" and not is_random(body_split(learn).prefix)


class CachedRows(Features):
    """Cached prefix outputs (a memory-mapped array, read row by row) and targets, as items of a fastai `TfmdDL`."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.array(self.features[index])), as_target(self.targets[index])


def cache_outputs(prefix: nn.Module, dl, path: Path) -> tuple[np.ndarray, torch.Tensor]:
    """`prefix` outputs (eval mode, no gradients, float32) of every batch of `dl`, written to the `.npy` file
    `path` and read back memory-mapped, and the targets."""
    was_training = prefix.training
    prefix.eval()
    rows, targets, start = None, [], 0
    with torch.no_grad():
        for xb, yb in dl:
            out = prefix(xb.as_subclass(torch.Tensor)).float().cpu().numpy()
            if rows is None:
                rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(dl.n, *out.shape[1:]))
            rows[start : start + len(out)] = out
            start += len(out)
            targets.append(yb.as_subclass(torch.Tensor).cpu())
    prefix.train(was_training)
    if rows is None:  # a refit's empty validation loader
        return np.zeros((0,), dtype=np.float32), torch.zeros(0)
    rows.flush()
    del rows
    return np.load(path, mmap_mode="r"), torch.cat(targets)


def prefix_learner(learn: Learner) -> Learner:
    """A learner that trains `learn`'s body rest and head in place on the prefix outputs of every image.

    Same loss, optimizer, weight decay, metrics, batch size and sampling as `learn`; `lr_find` and
    `fit_one_cycle` on it are those of `learn` in partial mode without the prefix's repeated forward passes.
    """
    split, head = body_split(learn), learn.model[1]
    cache = Path(learn.path) / learn.model_dir / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    train_dl, valid_dl = learn.dls.train, learn.dls.valid
    train_x, train_y = cache_outputs(split.prefix, train_dl.new(shuffle=False, drop_last=False), cache / "train.npy")
    valid_x, valid_y = cache_outputs(split.prefix, valid_dl, cache / "valid.npy")
    rest = nn.Sequential(split.rest, head)
    return cached_learner(learn, rest, (train_x, train_y), (valid_x, valid_y), CachedRows, train_bn=True)
