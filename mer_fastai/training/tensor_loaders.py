"""fastai DataLoaders over spectrograms held in memory: each PNG is decoded and resized once.

The back-end of `loaders.load_dataloaders(cache=True)`. The images are read from the same folders as the
DataBlock pipeline and resized with the same PIL bilinear squish as its `Resize` item transform, then kept as
uint8 tensors; scaling to [0, 1], normalisation and SpecAugment masking run per batch. Every epoch then costs
only the model's own compute, with no loader processes competing with it for the cores. The "study"
augmentation (random crops of the PNG) needs the per-item DataBlock pipeline and is not served here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from fastai.callback.data import WeightedDL
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import CategoryMap, IntToFloatTensor, Normalize, parent_label
from fastai.losses import CrossEntropyLossFlat
from fastai.torch_core import TensorCategory, TensorImage, default_device
from fasttransform import DisplayedTransform

from ..bounds import quote
from ..choices import AUGMENTS, IN_MEMORY_AUGMENTS
from ..data.dataset import REPAIR
from ..data.images import resize
from ..errors import MerError
from ..tasks.opened import Dataset, as_dataset
from .items import IMAGE_ERRORS, damage_reason, split_indices, target_values, training_items


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


class TensorImages:
    """Images (N, C, H, W) uint8 and their class indices (or, for regression, float target rows), as items of a
    fastai `TfmdDL`."""

    loss_func = CrossEntropyLossFlat()

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, vocab: CategoryMap, split_idx: int):
        self.images, self.targets, self.vocab, self.split_idx = images, targets, vocab, split_idx

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[TensorImage, torch.Tensor]:
        image = self.images[index]
        return TensorImage(image.expand(3, -1, -1)), as_target(self.targets[index])


def as_target(value: torch.Tensor) -> torch.Tensor:
    """A class index as fastai's `TensorCategory`; regression values as they are."""
    return value if value.is_floating_point() else TensorCategory(value)


def decode_images(paths: list[Path], size: tuple[int, int], bit_depth: int = 8) -> torch.Tensor:
    """PNG files → uint8 (N, C, height, width): one channel when all are greyscale, else RGB.

    Opening as RGB and resizing (fastai's way) gives the same pixels as resizing the greyscale image
    and repeating it, so greyscale spectrograms are kept at a third of the memory. 16-bit images (a fixed-size
    input such as musicnn's) are kept as they are, uint16 (N, 1, height, width), and must be `size` already.
    """
    if bit_depth == 16:
        return _decode_16bit(paths, size)
    from PIL import Image

    height, width = size
    arrays = []
    for path in paths:
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened if opened.mode == "L" else opened.convert("RGB")
                arrays.append(resize(image, size))
        except IMAGE_ERRORS as exc:
            reason = damage_reason(exc, path)
            raise MerError(
                f"{path}: cannot be read as an image ({reason}); replace it (in a data set: {REPAIR})"
            ) from exc
    channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    out = torch.empty((len(arrays), channels, height, width), dtype=torch.uint8)
    for i, array in enumerate(arrays):
        out[i] = torch.from_numpy(array.reshape(height, width, -1)).permute(2, 0, 1)
    return out


def _decode_16bit(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    from ..data.png import read_png16

    out = torch.empty((len(paths), 1, *size), dtype=torch.uint16)
    for i, path in enumerate(paths):
        try:
            array = read_png16(path)
        except IMAGE_ERRORS as exc:
            reason = damage_reason(exc, path)
            raise MerError(
                f"{path}: cannot be read as an image ({reason}); replace it (in a data set: {REPAIR})"
            ) from exc
        if array.shape != tuple(size):
            raise MerError(f"{path}: is {array.shape[0]}×{array.shape[1]}, not {size[0]}×{size[1]}; {REPAIR}")
        out[i, 0] = torch.from_numpy(array)
    return out


def memory_dataloaders(
    data_dir: str | Path | Dataset,
    *,
    size: int | tuple[int, int] = 224,
    bs: int = 32,
    stats: tuple[list[float], list[float]] | None = None,
    augment: str = "none",
    balanced: bool = False,
    extra_train_dirs: list[str | Path] | None = None,
) -> DataLoaders:
    """`load_dataloaders(cache=True)`: the images decoded once into memory (augment "none" or "specaugment")."""
    dataset = as_dataset(data_dir)
    data_dir, info, task = dataset.path, dataset.info, dataset.task
    classes = info.classes
    if augment not in IN_MEMORY_AUGMENTS:
        known = ", ".join(AUGMENTS)
        raise MerError(f"augmentation {quote(augment)} needs the per-image pipeline (--no-cache); in memory: {known}")
    train_items, valid_items = training_items(dataset, extra_train_dirs)
    items = train_items + valid_items
    train_idx, valid_idx = split_indices(len(train_items), len(valid_items))
    unknown = sorted({parent_label(p) for p in items} - set(classes))
    if unknown:
        raise MerError(f"{data_dir}: image folder(s) {', '.join(unknown)} are not classes of the data set {classes}")
    get_y = task.label_reader(lambda: target_values(dataset, balanced, extra_train_dirs))
    targets, vocab = task.target_tensor([get_y(p) for p in items], info)
    bit_depth = dataset.spec.bit_depth
    images = decode_images(items, (size, size) if isinstance(size, int) else tuple(size), bit_depth)
    after_batch = [IntToFloatTensor(div=float(2**bit_depth - 1))]
    if stats:
        after_batch.append(Normalize.from_stats(*stats))
    if augment == "specaugment":
        after_batch.append(SpecMask())
    train_ds, valid_ds = (
        TensorImages(images[idx], targets[idx], vocab, i) for i, idx in enumerate((train_idx, valid_idx))
    )
    device = default_device()
    common = {"bs": bs, "num_workers": 0, "after_batch": after_batch, "device": device}
    if balanced:
        counts = torch.bincount(targets, minlength=len(classes)).float()  # over all items, as loaders.py does
        weights = (1.0 / counts[train_ds.targets]).numpy()
        train = WeightedDL(train_ds, wgts=weights, shuffle=True, drop_last=True, **common)
    else:
        train = TfmdDL(train_ds, shuffle=True, drop_last=True, **common)
    valid = TfmdDL(valid_ds, shuffle=False, drop_last=False, **common)
    return DataLoaders(train, valid, path=data_dir, device=device)
