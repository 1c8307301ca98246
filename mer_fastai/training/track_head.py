"""Training a track head (`train --head track`) on the frozen body's cached window features.

The body runs once over every window (`feature_cache.encoded_splits`, as the window head's cache does); a
clip's windows become one example: its window features padded to the longest clip's count with a mask, and its
label. fastai's loop trains the `ClipHead` (pooling and dense layers) on batches of clips with the learner's
loss, optimizer, metrics and batch size (`--bs` counts clips here); the learner's model becomes the
`TrackModel` (the body and the trained head), which the run folder saves. The validation outputs are one row
per clip; `window_rows` gives each validation window its clip's row, so the task scores the clips as tracks.
"""

from __future__ import annotations

import numpy as np
import torch
from fastai.learner import Learner

from ..errors import MerError
from ..models.track_head import track_network
from ..tasks.opened import Dataset
from .feature_cache import cached_learner, encoded_splits, is_random
from .tensor_loaders import as_target

__all__ = ["track_learner", "window_rows"]


class ClipFeatures:
    """Clips as items of a fastai `TfmdDL`: (window features padded to a common count, mask, target)."""

    n_inp = 2  # the model reads features and mask

    def __init__(self, features: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor, vocab, split_idx: int):
        self.features, self.masks, self.targets = features, masks, targets
        self.vocab, self.split_idx = vocab, split_idx

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.features[index], self.masks[index], as_target(self.targets[index])


def clip_order(clip_ids: list[str]) -> tuple[list[str], list[list[int]]]:
    """The clips in order of first appearance and the indices of each clip's windows."""
    windows: dict[str, list[int]] = {}
    for index, clip in enumerate(clip_ids):
        windows.setdefault(clip, []).append(index)
    return list(windows), list(windows.values())


def clip_batch(features: torch.Tensor, targets: torch.Tensor, clip_ids: list[str]) -> tuple[torch.Tensor, ...]:
    """Window features (N, F) and targets of windows labelled `clip_ids` → per clip: features (clips, most
    windows, F) padded with zeros, mask (clips, most windows) and the clip's target (its first window's)."""
    _, groups = clip_order(clip_ids)
    if not groups:
        return torch.zeros(0, 1, 1), torch.zeros(0, 1, dtype=torch.bool), targets[:0]
    longest = max(map(len, groups))
    padded = torch.zeros(len(groups), longest, features.shape[1], dtype=features.dtype)
    mask = torch.zeros(len(groups), longest, dtype=torch.bool)
    for clip, indices in enumerate(groups):
        padded[clip, : len(indices)] = features[indices]
        mask[clip, : len(indices)] = True
    return padded, mask, targets[[indices[0] for indices in groups]]


def split_clips(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The clip of each training and validation image, in the loaders' order (the manifest's)."""
    return tuple([row.clip_id for row in dataset.rows if row.split == split] for split in ("train", "valid"))


def track_learner(learn: Learner, dataset: Dataset) -> Learner:
    """A learner training a track head on `learn`'s frozen body: `learn.model` becomes the `TrackModel` (body
    shared, head new), and the returned learner trains its `ClipHead` on batches of clips."""
    if is_random(learn.model[0]):
        raise MerError("--head track: this body is random in training (dropout); its features cannot be cached: "
                       "pass --head window")  # fmt: skip
    model = track_network(learn.model)
    learn.model = model
    train_ids, valid_ids = split_clips(dataset)
    train_dl = learn.dls.train
    _, train, valid = encoded_splits(model.encoder, learn)  # a track head trains on fp32 features
    train, valid = clip_batch(*train, train_ids), clip_batch(*valid, valid_ids)
    if len(train[0]) < train_dl.bs:
        raise MerError(
            f"{dataset.path}: {len(train[0])} training clips, fewer than one batch (--head track: --bs counts clips); "
            f"lower --bs (now {train_dl.bs})"
        )
    return cached_learner(learn, model.head, train, valid, items=ClipFeatures)


def window_rows(clip_outputs: np.ndarray, clip_ids: list[str]) -> np.ndarray:
    """Each window's row of per-clip outputs (clips in order of first appearance in `clip_ids`): a track head's
    windows all carry their clip's outputs, so a track (the mean of its windows) is the head's clip output."""
    clips, _ = clip_order(clip_ids)
    if len(clips) != len(clip_outputs):
        raise MerError(f"{len(clip_outputs)} track outputs for {len(clips)} clips; the data set changed under the run")
    index = {clip: i for i, clip in enumerate(clips)}
    return clip_outputs[[index[clip] for clip in clip_ids]]
