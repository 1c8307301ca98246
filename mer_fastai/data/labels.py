"""Class labels: the study's ratings file, quadrant files, generic CSVs and class-per-folder layouts.

`read_labels` reads a labels file in any of these layouts and derives the classes of one feature (an emotion,
a rating binned into three levels, a quadrant's valence or energy); `label_table` falls back to the files'
class folders without a labels file. Regression targets and moods are read by `targets`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bounds import quote
from ..errors import MerError
from .labelfiles import (
    ClipLabel,
    LabelTable,
    Row,
    cell_number,
    check_class_name,
    find_column,
    group_cell,
    is_missing,
    make_table,
    nfc,
    normalize_id,
    read_rows,
)
from .matching import check_unicode_aliases, clip_id

__all__ = ["read_labels", "FEATURES"]

FEATURES = ("emotions", "energy", "valence", "tension")
EMOTIONS = ("anger", "fear", "happy", "sad", "tender")
LEVELS = {
    "energy": ("low", "medium", "high"),
    "valence": ("negative", "neutral", "positive"),
    "tension": ("low", "medium", "high"),
}
QUADRANT_FEATURES = {
    "emotions": {"Q1": "Q1", "Q2": "Q2", "Q3": "Q3", "Q4": "Q4"},
    "valence": {"Q1": "positive", "Q4": "positive", "Q2": "negative", "Q3": "negative"},
    "energy": {"Q1": "high", "Q2": "high", "Q3": "low", "Q4": "low"},
}


def tertile_cuts(values: np.ndarray) -> list[float]:
    """Cut points that split ratings into three equally populated levels."""
    return [float(c) for c in np.quantile(values, [1 / 3, 2 / 3])]


def bin_value(value: float, cuts: list[float], levels: tuple[str, ...]) -> str:
    """Level name of a rating given ascending cut points."""
    return levels[int(np.searchsorted(cuts, value, side="left"))]


def level_names(feature: str) -> tuple[str, str, str]:
    return LEVELS.get(feature, ("low", "medium", "high"))  # type: ignore[return-value]


def read_labels(
    path: str | Path,
    feature: str,
    *,
    id_column: str | None = None,
    label_column: str | None = None,
    group_by: str | None = None,
    cuts: list[float] | None = None,
    skip_unlabeled: bool = False,
) -> LabelTable:
    """Read a labels file in any supported layout and derive the classes of `feature`.

    Rows whose label cell is blank, NaN or (for ratings) not a number are an error naming them, or with
    `skip_unlabeled` left out (listed in `excluded` with why).
    """
    path = Path(path)
    columns, rows = read_rows(path)
    lower = {c.lower() for c in columns}
    group_column = find_column(columns, group_by, path, "--group-by") if group_by else None
    if id_column or label_column:
        if not (id_column and label_column):
            raise MerError(f"{path}: a generic labels file needs both --id-column and --label-column")
        read, column, cuts = _generic(path, columns, rows, feature, id_column, label_column, group_column, cuts)
    elif {"number", "target"} <= lower:
        read, column, cuts = _ratings(path, columns, rows, feature, group_column, cuts)
    elif "quadrant" in lower:
        read, column = _quadrants(path, columns, rows, feature, group_column)
    else:
        raise MerError(
            f"{path}: cannot tell the layout (columns: {', '.join(columns)}); pass --id-column and --label-column"
        )
    return make_table(path, read, column, skip_unlabeled, cuts)


def _check_feature(feature: str, allowed: tuple[str, ...] | list[str], path: Path, kind: str) -> None:
    if feature not in allowed:
        raise MerError(f"{path}: {kind} cannot give feature {quote(feature)}; choose one of {', '.join(allowed)}")


def _ratings(path, columns, rows, feature, group_column, cuts) -> tuple[list[Row], str, list[float] | None]:
    """The study's mean-ratings file (number, valence, energy, tension, anger..tender, TARGET)."""
    _check_feature(feature, FEATURES, path, "a ratings file")
    number = find_column(columns, "number", path, "--labels")
    if feature == "emotions":
        target = find_column(columns, "TARGET", path, "--labels")
        read = []
        for line, row in rows:
            value = row[target]
            label = value.lower() if value.lower() in EMOTIONS else None
            left_out = None if label or is_missing(value) else f"left out of feature 'emotions' (TARGET {quote(value)})"
            read.append(Row(line, normalize_id(row[number]), label, group_cell(row, group_column), left_out))
        return read, target, None
    column = find_column(columns, feature, path, "--feature")
    return _binned(rows, number, column, feature, group_column, cuts)


def _binned(rows, id_col, column, feature, group_column, cuts) -> tuple[list[Row], str, list[float]]:
    """Numeric ratings binned into three levels at `cuts` (default: tertiles of the values present)."""
    values = [cell_number(row[column]) for _, row in rows]
    present = np.array([v for v in values if v is not None])
    cuts = cuts or (tertile_cuts(present) if present.size else [])
    read = [
        Row(
            line,
            normalize_id(row[id_col]),
            None if value is None else bin_value(value, cuts, level_names(feature)),
            group_cell(row, group_column),
        )
        for (line, row), value in zip(rows, values)
    ]
    return read, column, cuts


def _quadrants(path, columns, rows, feature, group_column) -> tuple[list[Row], str]:
    """Quadrant annotations (Song, Quadrant[, Artist]) of Russell's circumplex model."""
    _check_feature(feature, list(QUADRANT_FEATURES), path, "a quadrant (Q1..Q4) file")
    quadrant = find_column(columns, "quadrant", path, "--labels")
    song = next((c for c in columns if c.lower() in {"song", "id", "song_id", "file"}), columns[0])
    mapping = QUADRANT_FEATURES[feature]
    read = []
    for line, row in rows:
        value = row[quadrant].upper()
        if value not in mapping and not is_missing(value):
            raise MerError(
                f"{path}: quadrant {quote(row[quadrant])} of {quote(row[song])} (row {line}) "
                "is not one of Q1..Q4; fix the file"
            )
        read.append(Row(line, normalize_id(row[song]), mapping.get(value), group_cell(row, group_column)))
    return read, quadrant


def _generic(path, columns, rows, feature, id_column, label_column, group_column, cuts):
    """Any CSV: class names in a column, or numeric ratings binned into three levels.

    A column is ratings when `cuts` are given or when most cells that hold a value are numbers, with more than
    10 distinct values; its other cells (blank, NaN, text) then have no usable value.
    """
    id_col = find_column(columns, id_column, path, "--id-column")
    label_col = find_column(columns, label_column, path, "--label-column")
    present = [row[label_col] for _, row in rows if not is_missing(row[label_col])]
    numbers = [value for value in map(cell_number, present) if value is not None]
    if cuts or (len(numbers) * 2 > len(present) and len(set(numbers)) > 10):
        return _binned(rows, id_col, label_col, feature, group_column, cuts)
    read = [
        Row(
            line,
            normalize_id(row[id_col]),
            None if is_missing(row[label_col]) else row[label_col].lower(),
            group_cell(row, group_column),
        )
        for line, row in rows
    ]
    return read, label_col, None


def labels_from_folders(audio_dir: str | Path, files: list[Path]) -> LabelTable:
    """Class-per-folder layout: each file's class is its top-level folder under `audio_dir`
    (`AUDIO/happy/live/1.mp3` is `happy`); ids are the files' relative paths."""
    root = Path(audio_dir)
    check_unicode_aliases(root, files)
    labels = {}
    for file in files:
        if file.parent == root or not file.is_relative_to(root):
            raise MerError(
                f"{file}: lies directly in {root}; without --labels every file must sit in a class folder "
                f"({root}/<class>/...)"
            )
        label = nfc(file.relative_to(root).parts[0])
        check_class_name(label, f"{root}: class folder", "rename the folder")
        labels[normalize_id(clip_id(root, file))] = ClipLabel(label)
    return LabelTable(labels, {}, f"folders of {root}")


def label_table(
    audio_dir: str | Path,
    files: list[Path],
    labels: str | Path | None,
    feature: str,
    *,
    group_by: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    cuts: list[float] | None = None,
    skip_unlabeled: bool = False,
) -> LabelTable:
    """Labels of `files` from a labels file, or from their class folders when there is none."""
    if labels is None:
        if group_by:
            raise MerError("--group-by needs a --labels file that holds the group column")
        return labels_from_folders(audio_dir, files)
    return read_labels(
        labels,
        feature,
        id_column=id_column,
        label_column=label_column,
        group_by=group_by,
        cuts=cuts,
        skip_unlabeled=skip_unlabeled,
    )
