"""A compact class-conditional GAN (DCGAN-style) and its safetensors checkpoint.

Generator: noise and a learned class embedding → 4×4 → (upsample, 3×3 conv, BatchNorm, ReLU) blocks →
one tanh channel. Discriminator: spectral-normalised strided convolutions, global sum pooling and a
projection head (Miyato & Koyama 2018): score = linear(h) + <embed(class), h>. Trained with the hinge loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import MerError
from ..models.modelfile import FileFormat, read_safetensors, write_safetensors

RETRAIN = "retrain it with `mer-fastai gan train`"
GAN_FORMAT = FileFormat("mer-fastai-gan/1", "mer_fastai_gan", "GAN checkpoint", "`mer-fastai gan train`", RETRAIN)
MAX_CHANNELS = 256


@dataclass(frozen=True)
class GanShape:
    """Everything needed to rebuild the networks."""

    n_classes: int
    size: int = 64
    latent_dim: int = 128
    width: int = 16

    def __post_init__(self) -> None:
        if self.size < 8 or self.size & (self.size - 1):
            raise MerError(f"--size must be a power of two of 8 or more such as 32, 64, 128 (got {self.size})")
        if self.n_classes < 1:
            raise MerError("a GAN needs at least one class; check --class")

    @property
    def n_blocks(self) -> int:
        """Resolution doublings between 4×4 and `size`."""
        return int(math.log2(self.size)) - 2


class Generator(nn.Module):
    """(noise, class) → image in [-1, 1] of shape (1, size, size)."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        self.shape = shape
        blocks = shape.n_blocks
        channels = [min(shape.width * 2 ** (blocks - i), MAX_CHANNELS) for i in range(blocks + 1)]
        self.embed = nn.Embedding(shape.n_classes, shape.latent_dim)
        self.project = nn.Sequential(
            nn.Linear(2 * shape.latent_dim, channels[0] * 16), nn.Unflatten(1, (channels[0], 4, 4))
        )
        self.start = nn.Sequential(nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                )
                for c_in, c_out in pairwise(channels)
            )
        )
        self.to_image = nn.Sequential(nn.Conv2d(channels[-1], 1, 3, padding=1), nn.Tanh())

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.project(torch.cat([noise, self.embed(labels)], dim=1))
        return self.to_image(self.blocks(self.start(hidden)))


class Discriminator(nn.Module):
    """(image, class) → realness score per image, with spectral norm and projection conditioning."""

    def __init__(self, shape: GanShape) -> None:
        super().__init__()
        channels = [min(shape.width * 2**i, MAX_CHANNELS) for i in range(shape.n_blocks + 1)]
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(1, channels[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in pairwise(channels):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(channels[-1], 1))
        self.embed = spectral_norm(nn.Embedding(shape.n_classes, channels[-1]))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.features(images).sum(dim=(2, 3))
        return self.score(hidden).squeeze(1) + (self.embed(labels) * hidden).sum(dim=1)


def save_checkpoint(path: str | Path, generator: Generator, metadata: dict) -> Path:
    """Write the generator's weights and `metadata` (classes, sizes, training settings) as checksummed safetensors."""
    return write_safetensors(path, generator.state_dict(), {"shape": asdict(generator.shape), **metadata}, GAN_FORMAT)


def load_checkpoint(path: str | Path) -> tuple[Generator, dict]:
    """The generator (in eval mode, on the CPU) and metadata of a checkpoint; damage is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise MerError(f"{path}: GAN checkpoint not found; train one with `mer-fastai gan train`")
    state, metadata = read_safetensors(path, GAN_FORMAT)
    try:
        generator = Generator(GanShape(**metadata["shape"]))
        generator.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise MerError(f"{path}: weights do not fit the recorded network shape; {RETRAIN}") from exc
    return generator.eval(), metadata
