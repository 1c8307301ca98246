"""fastai DataLoaders over a prepared spectrogram folder (train/ and valid/, one folder per class)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import get_image_files, parent_label
from fastai.torch_core import TensorImage
from fastai.vision.augment import FlipItem, RandomResizedCrop, Resize, ResizeMethod
from fastai.vision.core import PILImage
from fastai.vision.data import ImageBlock
from fasttransform import DisplayedTransform

from .errors import MerError
from .prepare import read_dataset_info

AUGMENTS = ("none", "specaugment", "study")


class SpecMask(DisplayedTransform):
    """SpecAugment-style masking on training batches: random frequency bands and time spans set to 0."""

    split_idx = 0
    order = 99  # after Normalize: masked regions become the mean value

    def __init__(self, n_freq: int = 2, n_time: int = 2, max_width: float = 0.12):
        super().__init__()
        self.n_freq, self.n_time, self.max_width = n_freq, n_time, max_width

    def encodes(self, images: TensorImage) -> TensorImage:
        images = images.clone()
        batch, _, height, width = images.shape
        for axis, count, extent in ((2, self.n_freq, height), (3, self.n_time, width)):
            for _ in range(count):
                widths = (torch.rand(batch) * self.max_width * extent).long()
                starts = (torch.rand(batch) * (extent - widths)).long()
                for i in range(batch):
                    span = slice(int(starts[i]), int(starts[i] + widths[i]))
                    if axis == 2:
                        images[i, :, span, :] = 0
                    else:
                        images[i, :, :, span] = 0
        return images


def default_workers() -> int:
    """Loader processes: two at most, since the training itself needs the cores."""
    return min(2, os.cpu_count() or 1)


def load_dataloaders(
    data_dir: str | Path,
    *,
    size: int | tuple[int, int] = 224,
    bs: int = 32,
    stats: tuple[list[float], list[float]] | None = None,
    augment: str = "none",
    balanced: bool = False,
    extra_train_dirs: list[str | Path] | None = None,
    num_workers: int | None = None,
    seed: int = 42,
):
    """DataLoaders for a prepared data set.

    `size` is the training resolution (images are squished, never cropped, unless `augment="study"`);
    `balanced` draws training items with a class-balanced weighted sampler, as the study did;
    `extra_train_dirs` adds class folders (e.g. GAN-generated images) to the training split only.
    """
    from fastai.vision.augment import Normalize

    data_dir = Path(data_dir)
    info = read_dataset_info(data_dir)
    classes = info["classes"]
    if augment not in AUGMENTS:
        raise MerError(f"unknown augmentation {augment!r}; choose one of {', '.join(AUGMENTS)}")
    items = _items(data_dir, extra_train_dirs or [])
    if not any(p.is_relative_to(data_dir / "valid") for p in items):
        raise MerError(f"{data_dir}: the valid/ folder holds no image; prepare with a larger --valid-pct")
    size = (size, size) if isinstance(size, int) else size
    if augment == "study":
        item_tfms = [RandomResizedCrop(size, min_scale=0.08), FlipItem(0.5)]
    else:
        item_tfms = [Resize(size, method=ResizeMethod.Squish)]
    batch_tfms = [Normalize.from_stats(*stats)] if stats else []
    if augment == "specaugment":
        batch_tfms.append(SpecMask())
    block = DataBlock(
        blocks=(ImageBlock(PILImage), CategoryBlock(vocab=classes)),
        get_items=lambda _: items,
        splitter=lambda found: _split(found, data_dir / "valid"),
        get_y=parent_label,
        item_tfms=item_tfms,
        batch_tfms=batch_tfms,
    )
    workers = default_workers() if num_workers is None else num_workers
    kwargs = {"bs": bs, "num_workers": workers, "seed": seed}
    if balanced:
        labels = np.array([parent_label(p) for p in items])
        counts = {c: int((labels == c).sum()) for c in classes}
        weights = np.array([1.0 / counts[label] for label in labels])
        return block.weighted_dataloaders(data_dir, wgts=weights, **kwargs)
    return block.dataloaders(data_dir, **kwargs)


def _split(items: list[Path], valid_dir: Path) -> tuple[list[int], list[int]]:
    """Everything under valid/ validates; train/ and extra training folders train."""
    valid = [i for i, p in enumerate(items) if p.is_relative_to(valid_dir)]
    chosen = set(valid)
    return [i for i in range(len(items)) if i not in chosen], valid


def _items(data_dir: Path, extra_train_dirs: list[str | Path]) -> list[Path]:
    """Images of the data set plus extra training images laid out as <dir>/<class>/*.png."""
    items = list(get_image_files(data_dir, folders=["train", "valid"]))
    for extra in map(Path, extra_train_dirs):
        if not extra.is_dir():
            raise MerError(f"{extra}: augmentation folder not found; it must hold one folder per class")
        staged = [p for p in get_image_files(extra) if p.parent.parent == extra]
        if not staged:
            raise MerError(f"{extra}: holds no <class>/<image> files; generate images into class folders")
        if extra.resolve().is_relative_to((data_dir / "valid").resolve()):
            raise MerError(f"{extra}: lies inside the validation split; augmentation is for training only")
        items += staged
    return items
