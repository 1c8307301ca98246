"""Track heads: one label per clip from all of its windows at once (multiple-instance learning).

The body (with the parameter-free pooling that starts fastai's head) turns each window into a feature vector;
`pool` takes the mean, standard deviation and maximum of a clip's window features over its windows (padding
masked out), and dense layers of fastai's head shape (`create_head`: BatchNorm, dropout, 512 units, ReLU,
BatchNorm, dropout, the outputs; a regression head ends in `TargetRange`) map them to the clip's outputs.
Mean+std+max is the one pooling: it tied the window head and a learnt attention pooling lost on the artist
folds (BENCHMARKS.md, "Track-level heads on frozen bodies").
"""

from __future__ import annotations

import torch
from fastai.layers import AdaptiveConcatPool2d, Flatten
from torch import nn

from ..choices import TRACK_POOLING

__all__ = ["ClipHead", "TrackModel", "pool", "track_network"]

STATISTICS = 3  # mean, std and max of each feature
# Parameter-free, deterministic layers at the start of fastai's head: part of the per-window encoder
WINDOW_POOLING = (AdaptiveConcatPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, Flatten, nn.Flatten)


def pool(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(clips, windows, F) window features → (clips, 3F): mean, std (population) and max over each clip's windows;
    `mask` (clips, windows), True where a window exists (None: every window exists)."""
    if mask is None:
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    weights = mask.unsqueeze(-1).to(features.dtype)
    count = weights.sum(1).clamp_min(1.0)
    mean = (features * weights).sum(1) / count
    var = (((features - mean.unsqueeze(1)) ** 2) * weights).sum(1) / count
    top = features.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    return torch.cat([mean, var.clamp_min(1e-12).sqrt(), top], dim=1)


class ClipHead(nn.Module):
    """The trainable part of a track head: pooled window features → dense layers → one row of outputs per clip."""

    def __init__(self, dense: nn.Module):
        super().__init__()
        self.dense = dense

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.dense(pool(features, mask))


class TrackModel(nn.Module):
    """A frozen body's per-window `encoder` and a `ClipHead`: `forward(x)` takes a batch of clips of equal window
    counts, (clips, windows, 3, height, width), and gives (clips, outputs); `mask` (clips, windows) marks padding.

    Given a batch of windows, (windows, 3, height, width), it reads them as the windows of one clip and gives each
    window the clip's outputs, (windows, outputs): how an ensemble (`modelfile.EnsembleModel`) fed one clip's
    windows combines a track head with window heads at track level.
    """

    pooling = TRACK_POOLING

    def __init__(self, encoder: nn.Module, head: ClipHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def window_features(self, x: torch.Tensor) -> torch.Tensor:
        """(windows, 3, height, width) → the encoder's (windows, F) features."""
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 4:  # one clip's windows
            return self.head(self.window_features(x)[None]).expand(len(x), -1)
        clips, windows = x.shape[:2]
        features = self.window_features(x.flatten(0, 1)).reshape(clips, windows, -1)
        return self.head(features, mask)


def track_network(model: nn.Module) -> TrackModel:
    """The track model of a body + fastai head network (`modelfile.create_model`): its body and the head's pooling
    as the encoder (shared, not copied), new dense layers over the pooled statistics with as many outputs as the
    window head has (and its `TargetRange`, if any), initialised as fastai initialises a head."""
    from fastai.torch_core import apply_init
    from fastai.vision.learner import create_head

    body, head = model[0], model[1]
    cut = 0
    while cut < len(head) and isinstance(head[cut], WINDOW_POOLING):
        cut += 1
    linears = [layer for layer in head.modules() if isinstance(layer, nn.Linear)]
    n_features, n_out = linears[0].in_features, linears[-1].out_features
    dense = create_head(STATISTICS * n_features, n_out, pool=False)
    apply_init(dense, nn.init.kaiming_normal_)
    if not isinstance(head[-1], nn.Linear):  # a regression head's TargetRange
        dense.append(head[-1])
    return TrackModel(nn.Sequential(body, *head[:cut]), ClipHead(dense))
