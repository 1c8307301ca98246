"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for single-channel images in [-1, 1].

The same random transforms are applied to real and generated images before the discriminator sees
them, so the discriminator cannot memorise a small training set, while gradients still flow back to the
generator. Policies: `color` (brightness and contrast; a grayscale image has no saturation),
`translation` (shift by up to 1/8 of each side, zero padding) and `cutout` (a zeroed rectangle of half
the height and width).
"""

from __future__ import annotations

import torch

from ..bounds import quote
from ..errors import MerError

POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy: str) -> list[str]:
    """The ordered augmentations of a comma-separated policy; '' or 'none' means no augmentation."""
    if policy.strip().lower() in ("", "none"):
        return []
    names = [name.strip().lower() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise MerError(f"unknown DiffAugment policy {quote(unknown[0])}; combine {', '.join(POLICIES)} by commas")
    return names


def diff_augment(images: torch.Tensor, policy: str = DEFAULT_POLICY) -> torch.Tensor:
    """Randomly augment a (batch, channels, height, width) tensor; differentiable in `images`."""
    for name in parse_policy(policy):
        images = _AUGMENTS[name](images)
    return images


def brightness_contrast(images: torch.Tensor) -> torch.Tensor:
    """Shift brightness by ±0.5 and scale contrast by 0.5..1.5 around each image's mean."""
    batch = images.shape[0]
    shift = torch.rand(batch, 1, 1, 1, device=images.device, dtype=images.dtype) - 0.5
    images = images + shift
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    scale = torch.rand(batch, 1, 1, 1, device=images.device, dtype=images.dtype) + 0.5
    return (images - mean) * scale + mean


def translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by a random whole number of pixels; uncovered pixels become 0."""
    batch, _, height, width = images.shape
    max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = images.device
    dy = torch.randint(-max_dy, max_dy + 1, (batch, 1, 1), device=device)
    dx = torch.randint(-max_dx, max_dx + 1, (batch, 1, 1), device=device)
    index_b, index_y, index_x = torch.meshgrid(
        torch.arange(batch, device=device),
        torch.arange(height, device=device),
        torch.arange(width, device=device),
        indexing="ij",
    )
    # read from a copy padded by one zero pixel on every side; out-of-range reads land on the padding
    source_y = (index_y - dy + 1).clamp(0, height + 1)
    source_x = (index_x - dx + 1).clamp(0, width + 1)
    padded = torch.nn.functional.pad(images, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[index_b, source_y, source_x].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random rectangle of `ratio` × the height and width in each image."""
    batch, _, height, width = images.shape
    device = images.device
    half_h, half_w = height * ratio / 2, width * ratio / 2
    centre_y = torch.rand(batch, 1, 1, device=device) * height
    centre_x = torch.rand(batch, 1, 1, device=device) * width
    rows = torch.arange(height, device=device).view(1, height, 1) + 0.5
    cols = torch.arange(width, device=device).view(1, 1, width) + 0.5
    inside = ((rows - centre_y).abs() < half_h) & ((cols - centre_x).abs() < half_w)
    return images * (~inside).unsqueeze(1).to(images.dtype)


_AUGMENTS = {"color": brightness_contrast, "translation": translation, "cutout": cutout}
