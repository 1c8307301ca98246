"""Real training images in, generated class folders and sample grids out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..bounds import quote
from ..data.dataset import MANIFEST_FILE, REPAIR
from ..data.images import resize
from ..errors import MerError
from ..tasks.opened import Dataset

if TYPE_CHECKING:
    import torch


def pick_classes(dataset: Dataset, classes: list[str] | None) -> list[str]:
    """The requested classes (default: all of the data set), checked against `dataset.json`."""
    known = dataset.info.classes
    if not classes:
        return list(known)
    unknown = [name for name in classes if name not in known]
    if unknown:
        raise MerError(f"{dataset.path}: has no class {quote(unknown[0])} (classes: {', '.join(known)}); fix --class")
    return list(dict.fromkeys(classes))


def train_images(dataset: Dataset, name: str) -> list[Path]:
    """The training images of one class, never validation ones; none is a clear error."""
    files = sorted(dataset.items("train", name))
    if not files:
        raise MerError(f"{dataset.path / 'train' / name}: no training image of class {quote(name)}; check the data")
    missing = [file for file in files if not file.is_file()]
    if missing:
        raise MerError(f"{missing[0]}: listed in {MANIFEST_FILE} but missing ({len(missing)} in all); {REPAIR}")
    return files


def dataset_image_size(dataset: Dataset, classes: list[str]) -> tuple[int, int]:
    """(height, width) of the data set's images, read from its first training image."""
    from PIL import Image

    with Image.open(train_images(dataset, classes[0])[0]) as image:
        return image.height, image.width


def read_gray(path: Path) -> np.ndarray:
    """A PNG as a uint8 (height, width) array."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def load_real(dataset: Dataset, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """All training images of `classes` squished to size×size uint8, and their class indices."""
    from PIL import Image

    images, labels = [], []
    for index, name in enumerate(classes):
        for file in train_images(dataset, name):
            with Image.open(file) as image:
                images.append(resize(image.convert("L"), (size, size)))
            labels.append(index)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w) → float tensor (n, 1, h, w) in [-1, 1]."""
    import torch

    return torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float tensor (n, 1, h, w) in [-1, 1] → uint8 (n, h, w)."""
    import torch

    values = ((images.detach().cpu().squeeze(1) + 1.0) * 127.5).round().clamp(0, 255)
    return values.to(torch.uint8).numpy()


def resize_all(images: np.ndarray, image_size: tuple[int, int]) -> list[np.ndarray]:
    """Resize uint8 (n, h, w) images to (height, width) with bilinear filtering."""
    return [resize(image, image_size) for image in images]


def check_output_folder(out: Path, data_dir: Path) -> None:
    """Generated images must stay out of the data set; they enter training only through --augment-dir."""
    if out.resolve().is_relative_to(data_dir.resolve()):
        raise MerError(
            f"{out}: lies inside the data set {data_dir}; write generated images elsewhere "
            "and add them to training with --augment-dir"
        )


def save_class_images(images: list[np.ndarray], folder: Path, prefix: str) -> list[Path]:
    """Write grayscale PNGs `<folder>/<prefix><index>.png`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{prefix}{index:05d}.png"
        Image.fromarray(image, mode="L").save(path)
        paths.append(path)
    return paths


def plot_samples(path: Path, real: dict[str, list[np.ndarray]], fake: dict[str, list[np.ndarray]]) -> Path:
    """One row per class: a few real training images, then generated ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(real[name]) + len(fake[name]) for name in fake)
    height, width = next(iter(fake.values()))[0].shape
    cell = 1.6
    figsize = (cell * columns * max(width / height, 0.5), cell * len(fake))
    fig, axes = plt.subplots(len(fake), columns, figsize=figsize, squeeze=False)
    for row, name in enumerate(fake):
        shown = [("real", image) for image in real[name]] + [("generated", image) for image in fake[name]]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(shown):
                ax.axis("off")
                continue
            kind, image = shown[col]
            ax.imshow(image, cmap="magma", vmin=0, vmax=255, aspect="auto")
            if row == 0:
                ax.set_title(kind, fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
