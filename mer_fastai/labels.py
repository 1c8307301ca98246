"""Label readers: the study's ratings file, quadrant files, generic CSVs and class-per-folder layouts.

Every reader returns `{clip_id: ClipLabel}` for one feature (task). Clip ids are normalised so that
`1`, `001` and `001.mp3` all name the same clip.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MerError

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


@dataclass(frozen=True)
class ClipLabel:
    """The class of one clip for one feature, and the group it belongs to (e.g. its artist)."""

    label: str
    group: str | None = None


@dataclass
class LabelTable:
    """Labels of one feature, plus the clips the feature deliberately leaves out (e.g. SURPRISE)."""

    labels: dict[str, ClipLabel]
    excluded: set[str]
    source: str
    cuts: list[float] | None = None


def normalize_id(value: str) -> str:
    """Canonical clip id: no extension or whitespace; numbers without zero padding."""
    text = str(value).strip()
    stem = Path(text).stem if Path(text).suffix.lower() in {".mp3", ".wav", ".flac", ".ogg"} else text
    return str(int(stem)) if stem.isdigit() else stem


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Rows of a CSV/TSV file, whatever its delimiter, byte-order mark or line ends."""
    if not path.is_file():
        raise MerError(f"{path}: labels file not found; check --labels")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise MerError(f"{path}: the labels file is empty; it needs a header row")
    header = lines[0]
    delimiter = "\t" if "\t" in header else ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    columns = [c.strip() for c in reader.fieldnames or []]
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    return columns, rows


def find_column(columns: list[str], name: str, path: Path, option: str) -> str:
    """The column called `name` (case-insensitive), or a one-line error listing what exists."""
    for column in columns:
        if column.lower() == name.lower():
            return column
    raise MerError(f"{path}: no column {name!r} (columns: {', '.join(columns)}); fix {option}")


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
) -> LabelTable:
    """Read a labels file in any supported layout and derive the classes of `feature`."""
    path = Path(path)
    columns, rows = read_rows(path)
    lower = {c.lower() for c in columns}
    group_column = find_column(columns, group_by, path, "--group-by") if group_by else None
    if id_column or label_column:
        if not (id_column and label_column):
            raise MerError(f"{path}: a generic labels file needs both --id-column and --label-column")
        return _generic(path, columns, rows, feature, id_column, label_column, group_column, cuts)
    if {"number", "target"} <= lower:
        return _ratings(path, columns, rows, feature, group_column, cuts)
    if "quadrant" in lower:
        return _quadrants(path, columns, rows, feature, group_column)
    raise MerError(
        f"{path}: cannot tell the layout (columns: {', '.join(columns)}); pass --id-column and --label-column"
    )


def _check_feature(feature: str, allowed: tuple[str, ...] | list[str], path: Path, kind: str) -> None:
    if feature not in allowed:
        raise MerError(f"{path}: {kind} cannot give feature {feature!r}; choose one of {', '.join(allowed)}")


def _ratings(path, columns, rows, feature, group_column, cuts) -> LabelTable:
    """The study's mean-ratings file (number, valence, energy, tension, anger..tender, TARGET)."""
    _check_feature(feature, FEATURES, path, "a ratings file")
    number = find_column(columns, "number", path, "--labels")
    labels: dict[str, ClipLabel] = {}
    excluded: set[str] = set()
    if feature == "emotions":
        target = find_column(columns, "TARGET", path, "--labels")
        for row in rows:
            clip, label = normalize_id(row[number]), row[target].lower()
            if label in EMOTIONS:
                labels[clip] = ClipLabel(label, row.get(group_column) if group_column else None)
            else:
                excluded.add(clip)
        return LabelTable(labels, excluded, str(path))
    column = find_column(columns, feature, path, "--feature")
    values = _numbers(path, rows, column)
    cuts = cuts or tertile_cuts(values)
    for row, value in zip(rows, values):
        group = row.get(group_column) if group_column else None
        labels[normalize_id(row[number])] = ClipLabel(bin_value(value, cuts, level_names(feature)), group)
    return LabelTable(labels, excluded, str(path), cuts)


def _numbers(path: Path, rows: list[dict[str, str]], column: str) -> np.ndarray:
    try:
        return np.array([float(row[column].replace(",", ".")) for row in rows])
    except ValueError as exc:
        raise MerError(f"{path}: column {column!r} holds a non-numeric value ({exc}); fix the file") from exc


def _quadrants(path, columns, rows, feature, group_column) -> LabelTable:
    """Quadrant annotations (Song, Quadrant[, Artist]) of Russell's circumplex model."""
    _check_feature(feature, list(QUADRANT_FEATURES), path, "a quadrant (Q1..Q4) file")
    quadrant = find_column(columns, "quadrant", path, "--labels")
    song = next((c for c in columns if c.lower() in {"song", "id", "song_id", "file"}), columns[0])
    mapping = QUADRANT_FEATURES[feature]
    labels = {}
    for row in rows:
        value = row[quadrant].upper()
        if value not in mapping:
            raise MerError(f"{path}: quadrant {row[quadrant]!r} of {row[song]!r} is not one of Q1..Q4; fix the file")
        labels[normalize_id(row[song])] = ClipLabel(mapping[value], row.get(group_column) if group_column else None)
    return LabelTable(labels, set(), str(path))


def _generic(path, columns, rows, feature, id_column, label_column, group_column, cuts) -> LabelTable:
    """Any CSV: class names in a column, or numeric ratings binned into three levels."""
    id_col = find_column(columns, id_column, path, "--id-column")
    label_col = find_column(columns, label_column, path, "--label-column")
    raw = [row[label_col] for row in rows]
    numeric = all(_is_number(v) for v in raw) and len(set(raw)) > 10
    table_cuts = None
    if numeric or cuts:
        values = _numbers(path, rows, label_col)
        table_cuts = cuts or tertile_cuts(values)
        names = [bin_value(v, table_cuts, level_names(feature)) for v in values]
    else:
        names = [v.lower() for v in raw]
    labels = {}
    excluded = set()
    for row, name in zip(rows, names):
        clip = normalize_id(row[id_col])
        if name:
            labels[clip] = ClipLabel(name, row.get(group_column) if group_column else None)
        else:
            excluded.add(clip)
    return LabelTable(labels, excluded, str(path), table_cuts)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def labels_from_folders(audio_dir: str | Path, files: list[Path]) -> LabelTable:
    """Class-per-folder layout: each file's class is the name of its parent folder."""
    root = Path(audio_dir)
    labels = {}
    for file in files:
        if file.parent == root:
            raise MerError(f"{file}: lies directly in {root}; without --labels every file must sit in a class folder")
        labels[normalize_id(file.stem)] = ClipLabel(file.parent.name)
    return LabelTable(labels, set(), f"folders of {root}")


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
) -> LabelTable:
    """Labels of `files` from a labels file, or from their class folders when there is none."""
    if labels is None:
        if group_by:
            raise MerError("--group-by needs a --labels file that holds the group column")
        return labels_from_folders(audio_dir, files)
    return read_labels(labels, feature, id_column=id_column, label_column=label_column, group_by=group_by, cuts=cuts)
