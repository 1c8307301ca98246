"""The input contract: the size a network is fed at and how images are resized to it, in training and prediction.

Training decides these once per run (`input_size`, `resize_policy`, `loader_size`), records them in the model
file (`ModelMeta.input_size`, `ModelMeta.resize`), and `predict` feeds windows through the same
`resize_transform`. fastai is imported only where a transform is made, so the CLI starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastai.vision.augment import RandomResizedCrop, Resize

    from ..data.spectrogram import SpecConfig
    from .archs import ArchSpec

RESIZE_METHODS = ("squish", "crop")  # how training fed validation images: Resize(Squish) or a centre crop


def resize_policy(augment: str | None) -> str:
    """The validation resize of a run trained with `augment`: centre crops for "study", else squish."""
    return "crop" if augment == "study" else "squish"


def input_size(spec: ArchSpec, size: int | None = None) -> int:
    """The training resolution: `size`, else the architecture's own."""
    return size or spec.input_size


def native_input(spectrogram: SpecConfig) -> tuple[int, int] | None:
    """The (height, width) a network is fed spectrograms at as they are, unresized: 16-bit (log-compressed) ones,
    the fixed input of a network reading its own spectrograms (musicnn; `models.archs.check_spectrogram` pairs
    them); None: 8-bit images, resized to the square training size. The one rule of training, validation,
    predict and export."""
    return spectrogram.image_size if spectrogram.bit_depth == 16 else None


def loader_size(size: int, spectrogram: SpecConfig) -> int | tuple[int, int]:
    """What the loaders resize images to: a network reading its own spectrograms (musicnn) takes them at their
    native (height, width) (`native_input`), every other network the square `size`."""
    return native_input(spectrogram) or size


def resize_transform(size: int | tuple[int, int], policy: str) -> Resize | RandomResizedCrop:
    """fastai's item transform for a resize policy (`resize_policy`), in training and at prediction.

    "squish": `Resize(size, method=Squish)`; "crop": `RandomResizedCrop(size)`, random crops in training and,
    at validation (split_idx=1), a resize with a margin and a centre crop.
    """
    from fastai.vision.augment import RandomResizedCrop, Resize, ResizeMethod

    if policy == "crop":
        return RandomResizedCrop(size, min_scale=0.08)
    return Resize(size, method=ResizeMethod.Squish)
