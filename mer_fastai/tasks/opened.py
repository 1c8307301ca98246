"""A prepared data set opened once: its summary, spectrogram settings, manifest rows and task, read and checked at
the boundary as `ModelMeta` is for a model file.

`open_dataset(path)` reads `dataset.json`, `manifest.csv` and `spectrogram.json` (each refused in one line naming
the file and the fix, as `data.dataset` words it) and resolves the data set's task to its `Task` object; `train`,
`find_lr`, `run_cv`, `run_baseline`, `train_gan` and `load_dataloaders` take the `Dataset` it returns (or a path,
which they open once, with `as_dataset`), so no later step reads those files again. Data sets a command makes
itself (a cross-validation fold's, an `--augment-audio` view) are written with `write_dataset`, which returns the
record of what it wrote. It lives beside the tasks, not in `data/`: it holds a `Task`, which the data layer
below cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..bounds import quote
from ..data.dataset import (
    DATASET_FILE,
    REMAKE,
    SPLITS,
    TRAINING_SPLITS,
    DatasetInfo,
    ManifestRow,
    read_info,
    read_manifest,
    read_spec,
    write_info,
    write_manifest,
    write_spec,
)
from ..data.spectrogram import SpecConfig
from ..errors import MerError
from .base import Task
from .registry import TASKS

__all__ = ["Dataset", "open_dataset", "as_dataset", "write_dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A prepared data set as read once: its folder, `dataset.json` (`info`), `spectrogram.json` (`spec`), the
    rows of `manifest.csv` in file order, and its `Task` (`info.task` is the name dataset.json holds)."""

    path: Path
    info: DatasetInfo
    spec: SpecConfig
    rows: tuple[ManifestRow, ...]
    task: Task

    def split(self, name: str) -> list[ManifestRow]:
        """The manifest rows of one split, in manifest order."""
        if name not in SPLITS:
            raise MerError(f"unknown split {quote(name)}; choose one of {', '.join(SPLITS)}")
        return [row for row in self.rows if row.split == name]

    def items(self, split: str, label: str | None = None) -> list[Path]:
        """The images of one split (of one class, if `label` is given), in manifest order."""
        return [row.path(self.path) for row in self.split(split) if label in (None, row.label)]

    def training_items(self) -> tuple[list[Path], list[Path]]:
        """(training, validation) images, in manifest order (never the test split's)."""
        return tuple(self.items(split) for split in TRAINING_SPLITS)


def open_dataset(path: str | Path) -> Dataset:
    """The data set in folder `path`, its files read and checked once; a missing, unreadable or malformed one is
    refused in one line naming the file and the fix."""
    path = Path(path)
    info = read_info(path)
    task = dataset_task(info, path / DATASET_FILE)
    rows = read_manifest(path)
    return Dataset(path, info, read_spec(path), tuple(rows), task)


def dataset_task(info: DatasetInfo, source: Path) -> Task:
    """The `Task` of a data set's `dataset.json` (`source`): a task the registry does not know, or one of values
    that names no targets, is refused in one line naming the file."""
    if info.task not in TASKS:
        raise MerError(f"{source}: task {quote(info.task)} is not one of {', '.join(TASKS)}; {REMAKE}")
    task = TASKS[info.task]
    if task.facts.takes_targets and not info.targets:
        raise MerError(f"{source}: a {task} data set names its {task.facts.names_key}, this one none; {REMAKE}")
    return task


def as_dataset(data: str | Path | Dataset) -> Dataset:
    """`data` itself if it is opened already, else the data set in that folder (`open_dataset`)."""
    return data if isinstance(data, Dataset) else open_dataset(data)


def dataset_folder(data: str | Path | Dataset) -> Path:
    """The folder of a data set given opened or as a path (what a command locks before it opens it)."""
    return data.path if isinstance(data, Dataset) else Path(data)


def write_dataset(dest: Path, source: Dataset, info: DatasetInfo, rows: list[ManifestRow]) -> Dataset:
    """Write a data set made from `source` into `dest` (its manifest `rows`, `source`'s spectrogram settings, then
    `info` as its dataset.json); the record of what was written."""
    write_manifest(dest, rows)
    write_spec(dest, source.spec)
    write_info(dest, info)
    return Dataset(dest, info, source.spec, tuple(rows), source.task)
