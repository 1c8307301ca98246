"""musicnn as a table architecture: the pretrained network cut for fastai's `vision_learner`.

The full model is `nn.Sequential(body, tags)`; the table cuts it at -1, so fastai keeps `body` and puts its own
head on it (pooling, batch norm, dropout, dense layers), as for every other architecture.

`body` reads the images that `prepare --spectrogram musicnn` writes, as the data loaders feed them: 16-bit
log-mel images scaled to [0, 1] (pixel / 65535), repeated over 3 channels, low frequencies at the bottom, with
identity statistics. It turns them back into musicnn's input (log10(1 + 10000·P), mel band 0 first) and runs
musicnn up to the chosen layer (`choices.LAYERS`): the penultimate layer (batch, 200, 1, 1) by default, the
mid-end's max and mean over time (1506), the 50 tag probabilities, or the pooled and penultimate layers side by side
(1706). Its dropout is left out (fastai's head has its own), so the frozen body is deterministic and freeze mode
trains on cached features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...choices import LAYERS
from ...data.spectrogram import LOG_SCALE
from .network import MusicNN
from .tags import TAGS

PIXEL_SCALE = 65535.0  # the loaders scale 16-bit pixels to [0, 1]


class SpectrogramInput(nn.Module):
    """Loader images (B, C, 96, T) in [0, 1], low frequencies at the bottom → musicnn's (B, 1, 96, T) log-mel."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :1].flip(2) * (PIXEL_SCALE / LOG_SCALE)


class MusicnnBody(nn.Module):
    """Spectrogram images → one of musicnn's layers per patch (B, features, 1, 1), without dropout."""

    def __init__(self, network: MusicNN, layer: str = LAYERS[0]) -> None:
        super().__init__()
        self.layer = layer
        self.input = SpectrogramInput()
        self.frontend, self.midend, self.pool = network.frontend, network.midend, network.pool
        if layer != "pooled":  # only the layers the output needs are held (and saved)
            self.penultimate = _without_dropout(network.penultimate)
        if layer == "tags":
            self.tags = _without_dropout(network.head)
        pooled = network.penultimate[0].num_features
        self.feature_dim = {"penultimate": network.feature_dim, "pooled": pooled, "tags": network.head[-1].out_features,
                            "pooled+penultimate": pooled + network.feature_dim}[layer]  # fmt: skip

    def extra_repr(self) -> str:
        return f"layer={self.layer}"

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(self.midend(self.frontend(self.input(x))))
        if self.layer == "pooled":
            return pooled[:, :, None, None]
        penultimate = self.penultimate(pooled)
        if self.layer == "tags":
            out = torch.sigmoid(self.tags(penultimate))
        elif self.layer == "pooled+penultimate":
            out = torch.cat([pooled, penultimate], 1)
        else:
            out = penultimate
        return out[:, :, None, None]


def _without_dropout(module: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*[m for m in module if not isinstance(m, nn.Dropout)])


def transfer_model(model: str, pretrained: bool, layer: str = LAYERS[0]) -> nn.Sequential:
    """musicnn `model` ("msd" or "mtt") as `Sequential(body, tags)`, the body ending at `layer`, with its weights
    from the user cache when `pretrained` (one clear error naming `mer-fastai weights get musicnn` when they are
    missing)."""
    from .weights import load_state

    network = MusicNN(n_tags=len(TAGS[model]))
    if pretrained:
        network.load_state_dict(load_state(model))
    tags = nn.Sequential(nn.Flatten(), *network.head)
    return nn.Sequential(MusicnnBody(network, layer), tags)
