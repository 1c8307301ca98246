"""The data set a training run reads: checked against its manifest, its training and validation images and their
target values, its pixel statistics, and one-line errors for images damaged before or during training."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..data.dataset import DATASET_FILE, REPAIR, SPLITS, ManifestRow, extra_train_items, images_on_disk
from ..errors import MerError
from ..tasks.opened import Dataset
from .task_options import check_class_options

IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error)  # what PIL raises on damage
REFIT = "refit"  # in a data set's settings: made by `cv --refit`, all clips training, no validation split
SHOWN = 3  # offending images named in an error


def target_values(
    dataset: Dataset, balanced: bool = False, extra_train_dirs: list[str | Path] | None = None
) -> dict[Path, list[float]]:
    """A regression or multilabel data set's target values (1/0 per mood) of every image, from its manifest;
    the class-based options (`--balanced`, `--augment-dir`) are refused for it (`task_options`)."""
    check_class_options({"balanced": balanced, "extra_train_dirs": extra_train_dirs}, dataset.task)
    return {row.path(dataset.path): list(row.values) for row in dataset.rows}


def split_indices(n_train: int, n_valid: int) -> tuple[list[int], list[int]]:
    """(training, validation) indices of items listed training images first."""
    return list(range(n_train)), list(range(n_train, n_train + n_valid))


def training_items(dataset: Dataset, extra_train_dirs: list[str | Path] | None) -> tuple[list[Path], list[Path]]:
    """(training, validation) images: the manifest's, plus undamaged extra training images <dir>/<class>/<image>.

    A data set without validation images is refused, unless it is a refit's (`is_refit`).
    """
    train, valid = dataset.training_items()
    if not valid and not is_refit(dataset):
        raise MerError(f"{dataset.path}: the valid/ folder holds no image; prepare with a larger --valid-pct")
    extras = extra_train_items(dataset.path, dataset.spec, extra_train_dirs)
    damaged = next(((p, reason) for p in extras if (reason := image_damage(p))), None)
    if damaged:
        raise MerError(f"{damaged[0]}: damaged image ({damaged[1]}); delete or regenerate it")
    return train + extras, valid


def is_refit(dataset: Dataset) -> bool:
    """Whether `dataset` is the data set of a `cv --refit` model: every clip trains, none validates by design
    (its dataset.json's settings say `REFIT`)."""
    return bool(dataset.info.settings.get(REFIT))


def training_stats(
    dataset: Dataset, extra_train_dirs: list[str | Path] | None = None
) -> tuple[list[float], list[float]]:
    """(mean, std) of the training images' pixels scaled to [0, 1], the same for the three channels of the
    greyscale spectrograms: what `--norm dataset` normalises with."""
    from PIL import Image

    total = total_sq = count = 0.0
    for path in training_items(dataset, extra_train_dirs)[0]:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float64) / 255
        total, total_sq, count = total + pixels.sum(), total_sq + np.square(pixels).sum(), count + pixels.size
    mean = total / count
    std = max(float(np.sqrt(max(total_sq / count - mean**2, 0.0))), 1e-3)
    return [float(mean)] * 3, [std] * 3


def check_dataset(dataset: Dataset) -> Dataset:
    """`dataset` itself, once its folders are found to hold exactly its manifest's images.

    Refused in one line naming the first offending images: fewer than two classes; images listed in
    `manifest.csv` but missing, present under train/ or valid/ but not listed, moved to another split or
    class folder, in a folder that disagrees with their row, or not readable as an image.
    """
    data_dir, classes = dataset.path, list(dataset.info.classes)
    if len(classes) < 2:
        raise MerError(
            f"{data_dir / DATASET_FILE}: the data set has {len(classes)} class ({', '.join(classes) or 'none'}); "
            "training needs at least two, so prepare it again with labels of two or more classes"
        )
    listed = {row.image: row for row in dataset.rows}
    problem = _layout_problem(listed, images_on_disk(data_dir), set(classes)) or _damage_problem(data_dir, listed)
    if problem:
        raise MerError(f"{data_dir}: {problem}")
    return dataset


def _layout_problem(listed: dict[str, ManifestRow], present: set[str], classes: set[str]) -> str | None:
    """What first disagrees between the manifest and the image folders (None: they agree)."""
    missing = sorted(set(listed) - present)
    unlisted = sorted(present - set(listed))
    by_name = {Path(image).name: image for image in missing}
    moved = [(image, by_name[Path(image).name]) for image in unlisted if Path(image).name in by_name]
    if moved:
        shown = ", ".join(f"{now} (listed as {was})" for now, was in moved[:SHOWN])
        return (
            f"{len(moved)} image(s) lie in another folder than manifest.csv says, e.g. {shown}; move them back, "
            f"or delete them and {REPAIR}"
        )
    if missing:
        return (
            f"{len(missing)} image(s) listed in manifest.csv are missing, e.g. {', '.join(missing[:SHOWN])}; {REPAIR}"
        )
    if unlisted:
        return (
            f"{len(unlisted)} image(s) under train/ or valid/ are not in manifest.csv, e.g. "
            f"{', '.join(unlisted[:SHOWN])}; delete them (extra training images belong in an --augment-dir folder)"
        )
    wrong = [image for image, row in listed.items() if not _in_its_folder(image, row, classes)]
    if wrong:
        shown = ", ".join(f"{image} (row: {listed[image].split}, {listed[image].label})" for image in wrong[:SHOWN])
        return (
            f"{len(wrong)} manifest.csv row(s) disagree with their image's split/class folder, e.g. {shown}; {REPAIR}"
        )
    return None


def _in_its_folder(image: str, row: ManifestRow, classes: set[str]) -> bool:
    """Whether the image lies in <split>/<label>/ of its manifest row, with a split and class of the data set."""
    parts = Path(image).parts
    return len(parts) == 3 and parts[:2] == (row.split, row.label) and row.split in SPLITS and row.label in classes


def _damage_problem(data_dir: Path, listed: dict[str, ManifestRow]) -> str | None:
    """The images that are not valid image files (PIL's structural check, CRCs included: ~0.1 ms each)."""
    damaged = [(image, reason) for image in listed if (reason := image_damage(data_dir / image))]
    if not damaged:
        return None
    shown = ", ".join(f"{image} ({reason})" for image, reason in damaged[:SHOWN])
    return f"{len(damaged)} image(s) are damaged, e.g. {shown}; {REPAIR}"


def image_damage(path: Path) -> str | None:
    """Why `path` is not a readable image, or None when it is."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except IMAGE_ERRORS as exc:
        return damage_reason(exc, path)
    return None


def damage_reason(exc: Exception, path: Path) -> str:
    """PIL's reason for refusing `path`, without repeating the path."""
    return str(exc).replace(str(path), path.name) or type(exc).__name__


@contextmanager
def images_read(data_dir: Path) -> Iterator[None]:
    """Turn a failure to read the data set's images while training (the data set changed or was damaged under
    the run; a DataLoader worker's error carries a whole traceback) into one line."""
    try:
        yield
    except OSError as exc:
        text = str(exc)
        if str(data_dir) not in text and "DataLoader worker" not in text:
            raise
        reason = [line.strip() for line in text.splitlines() if line.strip()][-1]
        raise MerError(
            f"{data_dir}: an image could not be read during training ({reason}); the data set changed or was "
            f"damaged under this run: {REPAIR}, then train again"
        ) from exc
