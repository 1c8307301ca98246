"""fastai DataLoaders over a prepared spectrogram folder (train/ and valid/, one folder per class): the one entry
point `load_dataloaders`, which decodes the images once into memory (`tensor_loaders`) or reads them per image
through fastai's DataBlock."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from fastai.data.block import DataBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import parent_label
from fastai.vision.augment import FlipItem
from fastai.vision.core import PILImage
from fastai.vision.data import ImageBlock

from ..bounds import quote
from ..choices import AUGMENTS, IN_MEMORY_AUGMENTS
from ..errors import MerError
from ..models.preprocessing import resize_policy, resize_transform
from ..tasks.opened import Dataset, as_dataset
from .items import split_indices, target_values, training_items
from .tensor_loaders import SpecMask, memory_dataloaders

__all__ = ["load_dataloaders"]


def default_workers() -> int:
    """Loader processes: two at most, since the training itself needs the cores."""
    return min(2, os.cpu_count() or 1)


def load_dataloaders(
    data_dir: str | Path | Dataset,
    *,
    size: int | tuple[int, int] = 224,
    bs: int = 32,
    stats: tuple[list[float], list[float]] | None = None,
    augment: str = "none",
    balanced: bool = False,
    extra_train_dirs: list[str | Path] | None = None,
    num_workers: int | None = None,
    seed: int = 42,
    cache: bool = False,
    resize: str | None = None,
) -> DataLoaders:
    """DataLoaders for a prepared data set (a `Dataset`, or its folder, opened here).

    `size` is the training resolution (images are squished, never cropped, unless `augment="study"`);
    `balanced` draws training items with a class-balanced weighted sampler, as the study did;
    `extra_train_dirs` adds class folders (e.g. GAN-generated images) to the training split only.
    `cache`: decode every image once into memory and run the rest per batch (`tensor_loaders`; augment "none"
    or "specaugment"), else fastai's per-image DataBlock pipeline with `num_workers` loader processes.
    `resize`: the run's resize policy (`TrainSettings.resize`); None: the one of `augment`.
    """
    if augment not in AUGMENTS:
        raise MerError(f"unknown augmentation {quote(augment)}; choose one of {', '.join(AUGMENTS)}")
    common = {"size": size, "bs": bs, "stats": stats, "augment": augment, "balanced": balanced,
              "extra_train_dirs": extra_train_dirs}  # fmt: skip
    dataset = as_dataset(data_dir)
    if cache and augment in IN_MEMORY_AUGMENTS:
        return memory_dataloaders(dataset, **common)
    policy = resize or resize_policy(augment)
    return block_dataloaders(dataset, num_workers=num_workers, seed=seed, resize=policy, **common)


def block_dataloaders(
    dataset: Dataset,
    *,
    size: int | tuple[int, int],
    bs: int,
    stats: tuple[list[float], list[float]] | None,
    augment: str,
    balanced: bool,
    extra_train_dirs: list[str | Path] | None,
    num_workers: int | None,
    seed: int,
    resize: str,
) -> DataLoaders:
    """`load_dataloaders` through fastai's DataBlock: every image read, resized and augmented per item."""
    from fastai.vision.augment import Normalize

    data_dir, info, task = dataset.path, dataset.info, dataset.task
    classes = info.classes
    train_items, valid_items = training_items(dataset, extra_train_dirs)
    items = train_items + valid_items
    size = (size, size) if isinstance(size, int) else size
    item_tfms = [resize_transform(size, resize), *([FlipItem(0.5)] if resize == "crop" else [])]
    batch_tfms = [Normalize.from_stats(*stats)] if stats else []
    if augment == "specaugment":
        batch_tfms.append(SpecMask())
    get_y = task.label_reader(lambda: target_values(dataset, balanced, extra_train_dirs))
    block = DataBlock(
        blocks=(ImageBlock(PILImage), task.target_block(info)),
        get_items=lambda _: items,
        splitter=lambda _: split_indices(len(train_items), len(valid_items)),
        get_y=get_y,
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
