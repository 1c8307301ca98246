"""musicnn and its VGG baseline in PyTorch, a re-implementation of the original TensorFlow graphs.

Pons, J. & Serra, X. (2019). musicnn: pre-trained convolutional neural networks for music audio tagging.
ISMIR late-breaking/demo. Original code and weights: https://github.com/jordipons/musicnn (ISC licence).

Input: a batch of log-mel patches shaped (batch, 1, 96 mel bands, frames), mel band 0 (the lowest) in row 0,
time along the last axis — the original's (batch, frames, 96) patch transposed, with a channel axis. musicnn
takes any number of frames (it was trained on 187, 3 s); the VGG needs exactly 187.

`MusicNN` is an `nn.Sequential` of five named parts, so that it can be cut for transfer:
- `frontend`: batch norm of the input; timbral convolutions (7 frames × 38 and × 67 mel bands, 204 filters each,
  time padded by 3 on both sides) and temporal convolutions (128, 64 and 32 frames × 1 band, 51 filters each,
  TensorFlow's 'same' padding: one frame more after than before), each ReLU → batch norm → max over frequency,
  concatenated: (batch, 561, frames);
- `midend`: three 1-D convolutions over time (7 frames, 64 filters, ReLU → batch norm), the 2nd and 3rd residual,
  densely concatenated with the frontend: (batch, 753, frames);
- `pool`: max and mean over time, interleaved per feature as TensorFlow flattens them: (batch, 1506);
- `penultimate`: batch norm → dropout 0.5 → dense 200 → ReLU → batch norm: (batch, 200), what the original's
  extractor returns as 'penultimate';
- `head`: dropout 0.5 → dense 50: the tag logits (sigmoid gives the 'taggram' probabilities).
`features(x)` is the body (everything but `head`). Batch norms use TensorFlow's epsilon, 1e-3.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

TF_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
N_MELS = 96
N_TAGS = 50
FRONTEND_FILTERS = 1.6  # the original's num_filt: 1.6 × 128 timbral and 1.6 × 32 temporal filters
TIMBRAL_BANDS = (0.4, 0.7)  # kernel heights as fractions of the mel bands
TEMPORAL_FRAMES = (128, 64, 32)
MIDEND_FILTERS = 64
BACKEND_UNITS = 200
VGG_FILTERS = 128


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=TF_EPSILON)


def _bn1d(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=TF_EPSILON)


class FrequencyMaxBlock(nn.Module):
    """Conv2d (bands × frames kernel) → ReLU → batch norm → max over frequency: (B, 1, F, T) → (B, C, T)."""

    def __init__(self, filters: int, bands: int, frames: int, pad: tuple[int, int]) -> None:
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(1, filters, (bands, frames))
        self.bn = _bn2d(filters)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, self.pad)
        return self.bn(torch.relu(self.conv(x))).amax(dim=2)


class Frontend(nn.Module):
    """Input batch norm, timbral and temporal blocks, concatenated: (B, 1, 96, T) → (B, 561, T)."""

    def __init__(self, n_mels: int = N_MELS) -> None:
        super().__init__()
        timbral, temporal = int(FRONTEND_FILTERS * 128), int(FRONTEND_FILTERS * 32)
        self.input_bn = _bn2d(1)
        self.timbral = nn.ModuleList(
            FrequencyMaxBlock(timbral, int(share * n_mels), 7, (3, 3)) for share in TIMBRAL_BANDS
        )
        # TensorFlow's 'same' padding puts the odd frame of an even kernel after the input
        self.temporal = nn.ModuleList(
            FrequencyMaxBlock(temporal, 1, frames, ((frames - 1) // 2, frames // 2)) for frames in TEMPORAL_FRAMES
        )
        self.channels = timbral * len(TIMBRAL_BANDS) + temporal * len(TEMPORAL_FRAMES)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_bn(x)
        return torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)


class Midend(nn.Module):
    """Three 7-frame 1-D convolutions (the 2nd and 3rd residual), densely concatenated: (B, C, T) → (B, C+192, T)."""

    def __init__(self, channels: int, filters: int = MIDEND_FILTERS) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(n, filters, 7, padding=3) for n in (channels, filters, filters))
        self.bns = nn.ModuleList(_bn1d(filters) for _ in range(3))
        self.channels = channels + 3 * filters

    def forward(self, x: Tensor) -> Tensor:
        outputs = [x]
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = bn(torch.relu(conv(outputs[-1])))
            outputs.append(y if index == 0 else y + outputs[-1])
        return torch.cat(outputs, dim=1)


class TemporalPool(nn.Module):
    """Max and mean over time, interleaved per feature (max₀, mean₀, max₁, …): (B, C, T) → (B, 2C)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([x.amax(dim=2), x.mean(dim=2)], dim=2).flatten(1)


class MusicNN(nn.Sequential):
    """musicnn (frontend, midend, pool, penultimate, head); input (B, 1, 96, T) log-mel, output tag logits."""

    def __init__(self, n_tags: int = N_TAGS, n_mels: int = N_MELS) -> None:
        frontend = Frontend(n_mels)
        midend = Midend(frontend.channels)
        pooled = 2 * midend.channels
        super().__init__(
            OrderedDict(
                frontend=frontend,
                midend=midend,
                pool=TemporalPool(),
                penultimate=nn.Sequential(
                    _bn1d(pooled), nn.Dropout(0.5), nn.Linear(pooled, BACKEND_UNITS), nn.ReLU(), _bn1d(BACKEND_UNITS)
                ),
                head=nn.Sequential(nn.Dropout(0.5), nn.Linear(BACKEND_UNITS, n_tags)),
            )
        )
        self.feature_dim = BACKEND_UNITS

    def features(self, x: Tensor) -> Tensor:
        """The penultimate layer (B, 200): the body's output."""
        for module in list(self)[:-1]:
            x = module(x)
        return x


class MusicVGG(nn.Sequential):
    """The VGG-like baseline of the musicnn package: five 3×3 conv blocks, then a dense layer on 256 features.

    Input (B, 1, 96, 187) only. `features(x)` is the flattened last pooling (what the original calls 'pool5').
    """

    POOLS = ((1, 4), (2, 2), (2, 2), (2, 2), (4, 4))  # (frequency, time) windows; strides (2, 2) but the last

    def __init__(self, n_tags: int = N_TAGS, filters: int = VGG_FILTERS) -> None:
        layers: list[nn.Module] = [_bn2d(1)]
        channels = 1
        for index, pool in enumerate(self.POOLS):
            stride = pool if index == len(self.POOLS) - 1 else (2, 2)
            conv = nn.Conv2d(channels, filters, 3, padding=1)
            layers += [nn.Sequential(conv, nn.ReLU(), _bn2d(filters), nn.MaxPool2d(pool, stride), nn.Dropout(0.25))]
            channels = filters
        layers[-1] = layers[-1][:-1]  # no dropout after the last pooling but the one before the dense layer
        super().__init__(
            OrderedDict(
                body=nn.Sequential(*layers, FlattenTimeFirst()),
                head=nn.Sequential(nn.Dropout(0.5), nn.Linear(2 * filters, n_tags)),
            )
        )
        self.feature_dim = 2 * filters

    def features(self, x: Tensor) -> Tensor:
        """The flattened last pooling (B, 256): the body's output."""
        return self.body(x)


class FlattenTimeFirst(nn.Module):
    """(B, C, F, T) → (B, T·F·C), in TensorFlow's (time, frequency, channel) order."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 2, 1).flatten(1)


def _conv2d(kernel: np.ndarray) -> np.ndarray:
    """TensorFlow conv kernel (time, frequency, in, out) → PyTorch (out, in, frequency, time)."""
    return kernel.transpose(3, 2, 1, 0)


def _conv1d(kernel: np.ndarray) -> np.ndarray:
    """TensorFlow midend kernel (time, channels, 1, out) → PyTorch Conv1d (out, channels, time)."""
    return kernel[:, :, 0, :].transpose(2, 1, 0)


def _batch_norm(tensors: dict[str, np.ndarray], tf_name: str, torch_name: str) -> dict[str, np.ndarray]:
    parts = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
    return {f"{torch_name}.{ours}": tensors[f"{tf_name}/{theirs}"] for ours, theirs in parts.items()}


def _numbered(name: str, index: int) -> str:
    """TensorFlow's default layer names: `name`, `name_1`, `name_2`, …"""
    return name if index == 0 else f"{name}_{index}"


def musicnn_state(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A `MusicNN` state dict (no batch-norm counters) from the original checkpoint's variables."""
    state = _batch_norm(tensors, "batch_normalization", "frontend.input_bn")
    blocks = [f"frontend.timbral.{i}" for i in range(len(TIMBRAL_BANDS))]
    blocks += [f"frontend.temporal.{i}" for i in range(len(TEMPORAL_FRAMES))]
    for index, block in enumerate(blocks):
        state[f"{block}.conv.weight"] = _conv2d(tensors[f"{_numbered('conv2d', index)}/kernel"])
        state[f"{block}.conv.bias"] = tensors[f"{_numbered('conv2d', index)}/bias"]
        state |= _batch_norm(tensors, _numbered("batch_normalization", index + 1), f"{block}.bn")
    for index in range(3):
        conv = _numbered("conv2d", len(blocks) + index)
        state[f"midend.convs.{index}.weight"] = _conv1d(tensors[f"{conv}/kernel"])
        state[f"midend.convs.{index}.bias"] = tensors[f"{conv}/bias"]
        state |= _batch_norm(tensors, _numbered("batch_normalization", len(blocks) + 1 + index), f"midend.bns.{index}")
    dense_bns = len(blocks) + 4
    state |= _batch_norm(tensors, _numbered("batch_normalization", dense_bns), "penultimate.0")
    state["penultimate.2.weight"] = tensors["dense/kernel"].T
    state["penultimate.2.bias"] = tensors["dense/bias"]
    state |= _batch_norm(tensors, _numbered("batch_normalization", dense_bns + 1), "penultimate.4")
    state["head.1.weight"] = tensors["dense_1/kernel"].T
    state["head.1.bias"] = tensors["dense_1/bias"]
    return state


def vgg_state(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A `MusicVGG` state dict (no batch-norm counters) from the original checkpoint's variables."""
    state = _batch_norm(tensors, "batch_normalization", "body.0")
    for index in range(len(MusicVGG.POOLS)):
        state[f"body.{index + 1}.0.weight"] = _conv2d(tensors[f"{index + 1}CNN/kernel"])
        state[f"body.{index + 1}.0.bias"] = tensors[f"{index + 1}CNN/bias"]
        state |= _batch_norm(tensors, f"batch_normalization_{index + 1}", f"body.{index + 1}.2")
    state["head.1.weight"] = tensors["dense/kernel"].T
    state["head.1.bias"] = tensors["dense/bias"]
    return state
