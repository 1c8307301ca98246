"""Value labels: regression targets (numeric columns) and multilabel moods (a mood column or one column per mood).

Both are checked like class labels (`labelfiles.make_table`); each clip also gets a `label`, the image folder
it lies in and what the split is stratified by: the tertile bin of its first target, or its mood set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bounds import quote
from ..errors import MerError
from .labelfiles import (
    LabelTable,
    Row,
    cell_number,
    find_column,
    group_cell,
    is_missing,
    make_table,
    normalize_id,
    read_rows,
)
from .labels import bin_value, level_names, tertile_cuts
from .labelsource import LabelSource

OUTLIER_IQRS = 10  # a regression target this many interquartile ranges beyond a quartile is refused
RATING_SCALE = (1.0, 9.0)  # the study's ratings file: every scale runs from 1 to 9
MOOD_THRESHOLD = 0.5  # multilabel from vote shares: a mood holds with at least this share of the clip's top share


def read_targets(
    path: str | Path,
    targets: list[str],
    *,
    id_column: str | None = None,
    group_by: str | None = None,
    skip_unlabeled: bool = False,
    allow_outliers: bool = False,
) -> LabelTable:
    """Regression labels: the numeric columns `targets` of the study's ratings file or of any CSV with
    `id_column`, checked like class labels (blank, NaN or non-numeric cells are an error naming the rows,
    or with `skip_unlabeled` leave the clip out). Infinite values are refused, and so are values far outside
    the others (`OUTLIER_IQRS` interquartile ranges beyond a quartile) unless `allow_outliers` keeps them
    (with a note).

    Each clip's `label` is the tertile bin (low/medium/high, or negative/neutral/positive for valence) of
    its first target: what the split is stratified by and the image folder it lies in. `scale` is the
    study's 1-9 rating scale for its ratings file, else each column's min and max.
    """
    path = Path(path)
    if len(set(targets)) != len(targets):
        raise MerError(f"--target: {', '.join(targets)} names a column twice; name each target once")
    columns, rows = read_rows(path)
    id_col = _id_column(path, columns, id_column)
    known = None if id_column or "target" not in {c.lower() for c in columns} else RATING_SCALE
    found = [find_column(columns, name, path, "--target") for name in targets]
    group_column = find_column(columns, group_by, path, "--group-by") if group_by else None
    _refuse_infinite(path, rows, found)
    values = [tuple(cell_number(row[column]) for column in found) for _, row in rows]
    present = np.array([v for v in values if None not in v], dtype=float).reshape(-1, len(found))
    outliers = _outliers(path, rows, values, found, allow_outliers)
    scale = {name: _scale(path, column, present[:, i], known) for i, (name, column) in enumerate(zip(targets, found))}
    cuts = tertile_cuts(present[:, 0]) if len(present) else []
    levels = level_names(targets[0])
    read = [
        Row(
            line,
            normalize_id(row[id_col]),
            None if None in value else bin_value(value[0], cuts, levels),
            group_cell(row, group_column),
            values=None if None in value else value,  # type: ignore[arg-type]
        )
        for (line, row), value in zip(rows, values)
    ]
    table = make_table(path, read, ", ".join(found), skip_unlabeled, cuts)
    table.targets, table.scale = list(targets), scale
    table.notes += outliers
    return table


def _refuse_infinite(path: Path, rows: list[tuple[int, dict[str, str]]], columns: list[str]) -> None:
    """Refuse cells that are numbers but not finite (`inf`, `1e999`): a value no scale holds, not a blank."""
    bad = [
        (line, column, row[column])
        for line, row in rows
        for column in columns
        if not is_missing(row[column]) and cell_number(row[column]) is None and _is_float(row[column])
    ]
    if bad:
        raise MerError(f"{path}: {_cells(bad)} {'is' if len(bad) == 1 else 'are'} not finite; correct the cells")


def _is_float(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def _cells(cells: list[tuple[int, str, object]]) -> str:
    """`row 7 (valence = 1e+300), row 9 (energy = -28) and 3 more` for an error message."""
    shown = ", ".join(f"row {line} ({column} = {value})" for line, column, value in cells[:5])
    return shown + (f" and {len(cells) - 5} more" if len(cells) > 5 else "")


def _outliers(
    path: Path,
    rows: list[tuple[int, dict[str, str]]],
    values: list[tuple[float | None, ...]],
    columns: list[str],
    allow: bool,
) -> list[str]:
    """Refuse target values beyond `OUTLIER_IQRS` interquartile ranges of a quartile of their column, or with
    `allow` return a note about them. A column whose middle half of values all agree (an IQR of 0) gives no
    scale to judge by and is taken as it is."""
    found = []
    for i, column in enumerate(columns):
        present = np.array([value[i] for value in values if value[i] is not None], dtype=float)
        if present.size < 4:
            continue
        q1, q3 = np.quantile(present, [0.25, 0.75])
        spread = q3 - q1
        low, high = q1 - OUTLIER_IQRS * spread, q3 + OUTLIER_IQRS * spread
        found += [
            (line, column, f"{value[i]:g}")
            for (line, _), value in zip(rows, values)
            if value[i] is not None and spread and not low <= value[i] <= high
        ]
    if not found:
        return []
    if not allow:
        raise MerError(
            f"{path}: {_cells(found)} lie{'s' if len(found) == 1 else ''} far outside the other values (beyond "
            f"{OUTLIER_IQRS} interquartile ranges of a quartile); correct the cells, or keep them with --allow-outliers"
        )
    return [f"note: {path.name}: kept {len(found)} outlying value(s) (--allow-outliers): {_cells(found)}"]


def read_moods(
    path: str | Path,
    *,
    targets: list[str] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    threshold: float | None = None,
    group_by: str | None = None,
    skip_unlabeled: bool = False,
) -> LabelTable:
    """Multilabel labels: the moods of each clip, from a column of `;`-separated moods (`label_column`), or
    from one numeric column per mood (`targets`): 0/1 flags or vote shares. A mood holds for a clip when its
    value is above 0 and at least `threshold` (default 0.5) times the clip's largest value, so 0/1 columns
    are read as they are and vote shares keep the moods chosen by at least half as many listeners as the
    top one. Blank, NaN or non-numeric cells (and mood cells holding only separators) are refused like class
    labels; negative or infinite numbers are refused as such.

    Each clip's values are 1/0 per mood (`targets`: the moods, in order); its `label` is its mood set
    joined by "+" ("none" without any), what the split is stratified by and the image folder it lies in.
    """
    path = Path(path)
    LabelSource(path, targets=targets, label_column=label_column, threshold=threshold).check_moods()  # and bounds
    columns, rows = read_rows(path)
    id_col = _id_column(path, columns, id_column)
    group_column = find_column(columns, group_by, path, "--group-by") if group_by else None
    if label_column:
        column = find_column(columns, label_column, path, "--label-column")
        sets = [None if is_missing(row[column]) else _mood_set(row[column]) or None for _, row in rows]
        moods = sorted({mood for chosen in sets if chosen for mood in chosen})
        where = column
    else:
        found = [find_column(columns, name, path, "--target") for name in targets or []]
        moods, where = list(targets or []), ", ".join(found)
        _refuse_infinite(path, rows, found)
        _refuse_negative(path, rows, found)
        sets = [_chosen(moods, [cell_number(row[c]) for c in found], threshold or MOOD_THRESHOLD) for _, row in rows]
    bad = next((mood for mood in moods if "/" in mood or "\\" in mood or mood.startswith(".")), None)
    if bad is not None:
        raise MerError(f"{path}: mood {quote(bad)} cannot name a folder ('/', '\\' or a leading '.'); rename it")
    read = [
        Row(line, normalize_id(row[id_col]), None if chosen is None else "+".join(sorted(chosen)) or "none",
             group_cell(row, group_column), values=None if chosen is None else tuple(float(m in chosen) for m in moods))
        for (line, row), chosen in zip(rows, sets)
    ]  # fmt: skip
    table = make_table(path, read, where, skip_unlabeled, None)
    never = [mood for i, mood in enumerate(moods) if not any(c.values and c.values[i] for c in table.labels.values())]
    if never:
        raise MerError(f"{path}: mood(s) {', '.join(never)} hold for no clip; drop them or lower --threshold")
    table.targets = moods
    return table


def _refuse_negative(path: Path, rows: list[tuple[int, dict[str, str]]], columns: list[str]) -> None:
    """Refuse negative numbers in mood columns, which hold 0/1 flags or vote shares."""
    bad = [
        (line, column, row[column])
        for line, row in rows
        for column in columns
        if (value := cell_number(row[column])) is not None and value < 0
    ]
    if bad:
        raise MerError(
            f"{path}: {_cells(bad)} {'is' if len(bad) == 1 else 'are'} negative; a mood column holds 0/1 flags or "
            "vote shares (0 or more): correct the cells"
        )


def _id_column(path: Path, columns: list[str], id_column: str | None) -> str:
    """The clip-id column: `id_column`, else the study ratings file's `number`."""
    if id_column:
        return find_column(columns, id_column, path, "--id-column")
    if "number" in {c.lower() for c in columns}:
        return find_column(columns, "number", path, "--labels")
    raise MerError(f"{path}: cannot tell which column holds the clip ids (columns: {', '.join(columns)}); "
                   "pass --id-column")  # fmt: skip


def _mood_set(cell: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in cell.split(";") if part.strip())


def _chosen(moods: list[str], values: list[float | None], threshold: float) -> frozenset[str] | None:
    """The moods whose value is above 0 and at least `threshold` × the largest (None: a value is missing)."""
    if any(v is None for v in values):
        return None
    top = max(values, default=0.0)
    return frozenset(m for m, v in zip(moods, values) if v > 0 and v >= threshold * top)  # type: ignore[operator]


def _scale(path: Path, column: str, values: np.ndarray, known: tuple[float, float] | None) -> list[float]:
    """[low, high] of a target: the known rating scale when every value lies on it, else the values' range."""
    if len(values) and values.min() == values.max():
        raise MerError(
            f"{path}: column {quote(column)} holds the one value {values[0]:g} for every clip; a regression target "
            "must vary: choose another --target"
        )
    if known and len(values) and known[0] <= values.min() and values.max() <= known[1]:
        return list(known)
    return [float(values.min()), float(values.max())] if len(values) else []
