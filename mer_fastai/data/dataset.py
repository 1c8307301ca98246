"""A prepared data set on disk: the one place that reads and writes its files.

A data set folder holds
- `dataset.json`: its summary (`DatasetInfo`: feature, classes, counts, the settings it was made with, ...);
- `manifest.csv`: one row per spectrogram image (`ManifestRow`: source file, clip id, window start, label,
  split, image path relative to the folder, group, the SHA-256 of the source file's bytes, the fingerprint of its
  decoded audio (`data.fingerprint`: re-encoded copies of one recording share it, nearly); a regression data
  set adds one `target_<name>` column per target with the clip's value);
- `spectrogram.json`: the `SpecConfig` that made the images;
- `train/<class>/*.png`, `valid/<class>/*.png` and, with `prepare --test-pct`, `test/<class>/*.png`: the
  images themselves. Training reads train/ and valid/ only; the test split is scored once, at the end.

A regression data set (`task` "regression", `targets`, `scale` in dataset.json) keeps the same layout: its
"classes" are the tertile bins of the first target (`<split>/<bin>/*.png`), what the split is stratified by;
what it learns are the `target_<name>` values of the manifest. A multilabel data set (`task` "multilabel",
`targets`: the moods) likewise: its "classes" are the clips' mood sets ("happy+tender", "none"), its
`target_<mood>` columns hold 1 or 0.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from .._plumbing.files import atomic_path, atomic_write
from ..bounds import quote
from ..errors import MerError
from .spectrogram import SpecConfig

__all__ = ["DatasetInfo", "ManifestRow", "read_info", "read_manifest", "read_spec", "items"]

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.csv"
SPLITS = ("train", "valid", "test")
TRAINING_SPLITS = SPLITS[:2]  # what the DataLoaders read; "test" is held out
PREPARE_FIRST = "make the data set with `mer-fastai prepare` first"
REPAIR = "rerun `mer-fastai prepare` with the same options to repair it"
REMAKE = "prepare the data set again with `mer-fastai prepare --overwrite`"
DEFAULT_TASK = "classification"  # what records written before tasks existed hold (the registry's: `tasks.registry`)
# What fastai's get_image_files takes for an image: every extension with an image/* MIME type.
IMAGE_SUFFIXES = frozenset(ext for ext, kind in mimetypes.types_map.items() if kind.startswith("image/"))


@dataclass(frozen=True)
class DatasetInfo:
    """The summary in `dataset.json`: what `prepare` made and with which settings."""

    feature: str
    classes: list[str]
    audio_dir: str | None
    clips: int
    segments: int
    counts: dict[str, dict[str, int]]  # split → class → images
    excluded_by_feature: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"} of files left out
    notes: list[str] = field(default_factory=list)  # warnings about the labels, the split, the windows
    settings: dict = field(default_factory=dict)  # what a rerun of `prepare` must match
    subset_of: str | None = None  # the data set this one was cut from, if any
    # the task's name, known to the registry (`tasks.opened.open_dataset` checks it): with targets, `classes` are the
    # first target's bins (regression) or the mood sets (multilabel), the image folders
    task: str = DEFAULT_TASK
    targets: list[str] = field(default_factory=list)  # regression: the target names; multilabel: the moods
    scale: dict[str, list[float]] = field(default_factory=dict)  # regression: target → [low, high]

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        if values["subset_of"] is None:
            del values["subset_of"]
        if not self.targets:  # classification data sets (no targets) are written as before
            for key in ("task", "targets", "scale"):
                del values[key]
        return values

    @classmethod
    def from_dict(cls, values: dict, source: str = DATASET_FILE) -> DatasetInfo:
        """The record of a parsed `dataset.json`; unknown keys are ignored, missing or mistyped ones refused."""
        if not isinstance(values, dict):
            raise MerError(f"{source}: does not hold a JSON object; {REMAKE}")
        required = [f.name for f in dataclasses.fields(cls) if _is_required(f)]
        missing = [name for name in required if name not in values]
        if missing:
            raise MerError(f"{source}: lacks {', '.join(missing)}; {REMAKE}")
        known = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
        info = cls(**known)
        if not (isinstance(info.classes, list) and all(isinstance(name, str) for name in info.classes)):
            raise MerError(f"{source}: classes is not a list of names; {REMAKE}")
        if not isinstance(info.counts, dict) or not isinstance(info.settings, dict):
            raise MerError(f"{source}: counts or settings is not a JSON object; {REMAKE}")
        if not isinstance(info.task, str) or not _valid_targets(info):
            raise MerError(f"{source}: task, targets or scale is malformed; {REMAKE}")
        return info


def _valid_targets(info: DatasetInfo) -> bool:
    """Whether the targets (or moods) are a list of names, each with a rising [low, high] scale where the data set
    has scales (regression's targets; moods have none). Whether its task needs them is the task's (`tasks.opened`)."""
    if not (isinstance(info.targets, list) and isinstance(info.scale, dict)):
        return False
    if not all(isinstance(name, str) for name in info.targets):
        return False
    if not info.scale:
        return True
    scales = [info.scale.get(name) for name in info.targets]
    return all(isinstance(pair, list) and len(pair) == 2 and pair[0] < pair[1] for pair in scales)


def _is_required(spec: dataclasses.Field) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def read_info(data_dir: str | Path) -> DatasetInfo:
    """The `dataset.json` of a data set; a missing or unreadable one is refused in one line."""
    path = Path(data_dir) / DATASET_FILE
    if not path.is_file():
        raise MerError(f"{data_dir}: no {DATASET_FILE}; {PREPARE_FIRST}")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MerError(f"{path}: cannot be read ({exc}); {REMAKE}") from exc
    except json.JSONDecodeError as exc:
        raise MerError(f"{path}: not valid JSON ({exc}); {REMAKE}") from exc
    return DatasetInfo.from_dict(values, str(path))


def write_info(data_dir: str | Path, info: DatasetInfo) -> Path:
    """Write `dataset.json` atomically: readers see the old summary or the complete new one."""
    return atomic_write(Path(data_dir) / DATASET_FILE, json.dumps(info.to_dict(), indent=2) + "\n")


@dataclass(frozen=True)
class ManifestRow:
    """One spectrogram image of the data set, as a row of `manifest.csv`."""

    source: str  # the audio file, as prepare found it
    clip_id: str  # its path below the audio folder, without extension
    segment_start: float  # seconds into the clip
    label: str
    split: str  # "train", "valid" or "test"
    image: str  # relative to the data set folder, "/"-separated: <split>/<label>/<name>.png
    group: str = ""  # what the split kept together: the --group-by value, else the clip id ("" in older manifests)
    sha256: str = ""  # of the source file's bytes: one recording, one hash ("" in older manifests)
    fingerprint: str = ""  # of the decoded audio, `data.fingerprint` (hex; "" in older manifests)
    targets: dict[str, float] = field(default_factory=dict, hash=False)  # regression: target → value

    def to_dict(self) -> dict[str, str]:
        """The row as `manifest.csv` (and prepare's journal) holds it: every value a string, each target a
        `target_<name>` column."""
        values = {name: getattr(self, name) for name in MANIFEST_COLUMNS}
        targets = {f"{TARGET_PREFIX}{name}": repr(float(value)) for name, value in self.targets.items()}
        return {**values, "segment_start": f"{self.segment_start:.3f}", **targets}

    @classmethod
    def from_dict(cls, values: dict[str, str]) -> ManifestRow:
        """A row from its string values (KeyError: a column is missing; ValueError: not a number)."""
        text = {name: values[name] for name in REQUIRED_COLUMNS}
        targets = {
            name.removeprefix(TARGET_PREFIX): _finite(value)
            for name, value in values.items()
            if name and name.startswith(TARGET_PREFIX)
        }
        return cls(
            **{**text, "segment_start": float(text["segment_start"])},
            group=values.get("group") or "",
            sha256=values.get("sha256") or "",
            fingerprint=values.get("fingerprint") or "",
            targets=targets,
        )

    @property
    def values(self) -> tuple[float, ...]:
        """The target values, in the manifest's column order."""
        return tuple(self.targets.values())

    def path(self, data_dir: str | Path) -> Path:
        """The image file."""
        return Path(data_dir) / self.image


TARGET_PREFIX = "target_"
MANIFEST_COLUMNS = tuple(f.name for f in dataclasses.fields(ManifestRow))[:-1]  # then one column per target
REQUIRED_COLUMNS = MANIFEST_COLUMNS[:-3]  # manifests written before `group`, `sha256`, `fingerprint` lack them


def _finite(text: str) -> float:
    """A target cell as a finite number (ValueError otherwise)."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"target value {quote(text)} is not a finite number")
    return value


def read_manifest(data_dir: str | Path) -> list[ManifestRow]:
    """The rows of `manifest.csv`; a missing, unreadable, empty or malformed manifest is refused in one line."""
    path = Path(data_dir) / MANIFEST_FILE
    if not path.is_file():
        if not (Path(data_dir) / DATASET_FILE).is_file():  # no data set at all: say so rather than "repair"
            raise MerError(f"{data_dir}: no {DATASET_FILE}; {PREPARE_FIRST}")
        raise MerError(f"{path}: not found; {REPAIR}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
            values = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MerError(f"{path}: cannot be read ({exc}); {REPAIR}") from exc
    if missing or not values:
        what = f"lacks the column(s) {', '.join(missing)}" if missing else "lists no image"
        raise MerError(f"{path}: {what}; {REPAIR}")
    rows = []
    for line, row in enumerate(values, start=2):
        try:
            rows.append(ManifestRow.from_dict(row))
        except (TypeError, ValueError) as exc:
            raise MerError(f"{path}: line {line} is malformed ({exc}); {REPAIR}") from exc
    return rows


def write_manifest(data_dir: str | Path, rows: list[ManifestRow]) -> Path:
    """Write `manifest.csv` atomically."""
    path = Path(data_dir) / MANIFEST_FILE
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        targets = [f"{TARGET_PREFIX}{name}" for name in (rows[0].targets if rows else {})]
        writer = csv.DictWriter(handle, fieldnames=[*MANIFEST_COLUMNS, *targets])
        writer.writeheader()
        writer.writerows(row.to_dict() for row in rows)
    return path


def read_spec(data_dir: str | Path) -> SpecConfig:
    """The spectrogram settings the data set's images were made with (`spectrogram.json`)."""
    return SpecConfig.load(data_dir)


def write_spec(data_dir: str | Path, spec: SpecConfig) -> Path:
    """Write `spectrogram.json`."""
    return spec.save(data_dir)


def items(data_dir: str | Path, split: str, label: str | None = None) -> list[Path]:
    """The images of one split (of one class, if `label` is given), in manifest order."""
    if split not in SPLITS:
        raise MerError(f"unknown split {quote(split)}; choose one of {', '.join(SPLITS)}")
    rows = read_manifest(data_dir)
    return [row.path(data_dir) for row in rows if row.split == split and label in (None, row.label)]


def extra_train_items(data_dir: str | Path, spec: SpecConfig, extra_train_dirs: list[str | Path] | None) -> list[Path]:
    """Extra training images (e.g. GAN-generated) laid out as <dir>/<class>/<image>, sorted, folder by folder, for
    the data set in `data_dir` made with `spec`."""
    found = []
    for extra in map(Path, extra_train_dirs or []):
        if not extra.is_dir():
            raise MerError(f"{extra}: augmentation folder not found; it must hold one folder per class")
        staged = sorted(p for p in extra.glob("*/*") if _is_image(p) and not _hidden(p.relative_to(extra)))
        if not staged:
            raise MerError(f"{extra}: holds no <class>/<image> files; generate images into class folders")
        for split, name in (("valid", "validation"), ("test", "test")):
            if extra.resolve().is_relative_to((Path(data_dir) / split).resolve()):
                raise MerError(f"{extra}: lies inside the {name} split; augmentation is for training only")
        if spec.bit_depth != 8:
            raise MerError(
                f"{extra}: extra training images are 8-bit dB spectrograms, which {data_dir}'s "
                f"{spec.compression} images are not; train without --augment-dir / GAN images"
            )
        found += staged
    return found


def images_on_disk(data_dir: str | Path) -> set[str]:
    """Every image file under train/, valid/ and test/ (hidden files and folders aside), relative and "/"-separated."""
    data_dir = Path(data_dir)
    found = set()
    for split in SPLITS:
        for path in (data_dir / split).rglob("*"):
            relative = path.relative_to(data_dir)
            if _is_image(path) and not _hidden(relative):
                found.add(relative.as_posix())
    return found


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _hidden(relative: Path) -> bool:
    """Whether a file or one of its folders is hidden (fastai's get_image_files skips those)."""
    return any(part.startswith(".") for part in relative.parts)
