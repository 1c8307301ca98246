"""The data set section of the page: a run's data set folder found, and its facts (clips, windows, coverage)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..._plumbing.locks import reading
from ...errors import MerError
from ...runs.layout import FOLD_DATA, FOLDS_DIR, GRID_DATA
from .values import slug

if TYPE_CHECKING:
    from ...data.spectrogram import SpecConfig
    from ...tasks.opened import Dataset


class Datasets(dict):
    """A page's data set sections by folder, each made once (cells and folds share theirs); `opened`: data sets
    the caller has read already (a finished run's own), described without reading them again."""

    def __init__(self, opened: Iterable[Dataset] = ()) -> None:
        super().__init__()
        self.opened = {str(dataset.path.resolve()): dataset for dataset in opened}


def find_data_dir(recorded: str | None, grid: Path | None) -> Path | None:
    """The data set folder a run recorded: as written, else `data/<name>` of its grid (the grid was moved)."""
    from ...data.dataset import DATASET_FILE

    if not recorded:
        return None
    candidates = [Path(recorded)] + ([grid / GRID_DATA / Path(recorded).name] if grid is not None else [])
    return next((p for p in candidates if (p / DATASET_FILE).is_file()), None)


def dataset_section(data_dir: Path | None, recorded: str | None, datasets: Datasets) -> dict | None:
    """The data set facts, made once per data set folder (cells of a grid share theirs)."""
    if not recorded:
        return None
    key = str(data_dir.resolve()) if data_dir is not None else recorded
    if key not in datasets:
        name = dataset_name(Path(recorded))
        anchor = f"data-{slug(name)}-{len(datasets) + 1}"
        facts = dataset_facts(data_dir, datasets.opened.get(key))
        datasets[key] = {"anchor": anchor, "name": name, "path": recorded, **facts}
    return datasets[key]


def dataset_name(folder: Path) -> str:
    """What the page calls a data set: its folder's name; a cross-validation fold's own data set `fold <k>`."""
    if folder.name == FOLD_DATA and folder.parent.parent.name == FOLDS_DIR:
        return f"fold {folder.parent.name}"
    return folder.name


def dataset_facts(data_dir: Path | None, dataset: Dataset | None = None) -> dict:
    """Clips and windows per class and split, window coverage per clip, skipped files, notes and the spectrogram
    settings in one line; `dataset`: the folder's data set as the caller opened it (else read here)."""
    from ...data.dataset import SPLITS
    from ...tasks.opened import open_dataset

    if data_dir is None:
        return {
            "message": "The data set folder was not found (moved or deleted), so its facts cannot be shown.",
            "spectrogram": "unknown (data set folder not found)",
        }
    try:
        if dataset is None:
            with reading(data_dir):  # not while prepare changes it
                dataset = open_dataset(data_dir)
    except MerError as exc:
        return {"message": f"The data set cannot be read: {exc}", "spectrogram": f"unknown ({exc})"}
    info, rows, spec = dataset.info, dataset.rows, dataset.spec
    clips: dict[tuple[str, str], set[str]] = defaultdict(set)
    covered: dict[tuple[str, str], float] = {}
    for row in rows:
        clips[(row.split, row.label)].add(row.clip_id)
        end = row.segment_start + spec.segment_seconds
        covered[(row.split, row.clip_id)] = max(end, covered.get((row.split, row.clip_id), 0.0))
    splits = [split for split in SPLITS if split != "test" or info.counts.get("test")]
    table = [_class_row(name, info.counts, clips, splits) for name in info.classes]
    columns = [f"{split}_{what}" for split in splits for what in ("clips", "windows")]
    table.append({"name": "all", "total": True, **{k: sum(r[k] for r in table) for k in columns}})
    facts = [("feature", info.feature), ("task", info.task)]
    if info.targets:
        facts.append((dataset.task.facts.names_key, ", ".join(info.targets)))
    facts.append(("folders (what the split is stratified by)" if info.targets else "classes", ", ".join(info.classes)))
    facts.append(("audio folder", info.audio_dir or "–"))
    facts += [("clips", str(info.clips)), ("windows", str(info.segments))]
    if info.excluded_by_feature:
        facts.append(("clips left out by the feature", str(info.excluded_by_feature)))
    return {
        "message": None,
        "splits": splits,
        "facts": facts,
        "classes": table,
        "durations": _durations(covered, splits),
        "skipped": info.skipped,
        "notes": info.notes,
        "spectrogram": spectrogram_line(spec),
    }


def spectrogram_line(spec: SpecConfig) -> str:
    """A data set's spectrogram settings in one line."""
    return (
        f"{spec.n_mels} mel bands, {spec.sample_rate} Hz, n_fft {spec.n_fft}, hop {spec.hop_length}, "
        f"{spec.segment_seconds:g} s windows every {spec.hop_seconds:g} s"
    )


def _class_row(name: str, counts: dict, clips: dict, splits: list[str]) -> dict:
    row = {"name": name, "total": False}
    for split in splits:
        row[f"{split}_windows"] = counts.get(split, {}).get(name, 0)
        row[f"{split}_clips"] = len(clips.get((split, name), ()))
    return row


def _durations(covered: dict[tuple[str, str], float], splits: list[str]) -> list[dict]:
    result = []
    for split in splits:
        values = [seconds for (s, _), seconds in covered.items() if s == split]
        if values:
            result.append(
                {
                    "split": split,
                    "clips": len(values),
                    "min": min(values),
                    "median": statistics.median(values),
                    "max": max(values),
                }
            )
    return result
