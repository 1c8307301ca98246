"""Label readers: the study's ratings file, quadrant files, generic CSVs and class-per-folder layouts.

Every reader returns a `LabelTable` for one feature (task), keyed by normalised ids: `1`, `001` and
`001.mp3` name the same clip; an id with a folder (`rock/001.mp3`) names the clip by its path relative
to the audio folder. Ids, file and folder names are compared in Unicode NFC (`Café` typed with a
composed or a decomposed `é` is one name). A labels file is checked as it is read: its encoding, blank ids,
blank or non-numeric cells, class names that cannot name a folder and duplicate ids (the same label: a note;
conflicting labels: an error). `match_clips` then pairs audio files with the table's rows.
"""

from __future__ import annotations

import csv
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .._plumbing.files import check_component
from ..errors import MerError
from .audio import AUDIO_EXTENSIONS, SkippedFile

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
MISSING = frozenset({"", "nan", "na", "n/a"})  # cells that hold no value
SKIP_HINT = "fill them in, or pass --skip-unlabeled to leave those clips out"
OUTLIER_IQRS = 10  # a regression target this many interquartile ranges beyond a quartile is refused


@dataclass(frozen=True)
class ClipLabel:
    """The class of one clip for one feature, and the group it belongs to (e.g. its artist)."""

    label: str
    group: str | None = None
    values: tuple[float, ...] | None = None  # regression: the clip's target values (label: the first one's bin)


@dataclass
class LabelTable:
    """Labels of one feature by normalised id, the ids left out (with why), and notes about the file."""

    labels: dict[str, ClipLabel]
    excluded: dict[str, str]
    source: str
    cuts: list[float] | None = None
    notes: list[str] = field(default_factory=list)
    task: str = "classification"  # or "regression" (`values`: the targets'), "multilabel" (1/0 per mood)
    targets: list[str] = field(default_factory=list)  # regression: the target columns; multilabel: the moods
    scale: dict[str, list[float]] = field(default_factory=dict)  # regression: target → [low, high]


@dataclass(frozen=True)
class _Row:
    """One row of a labels file as read: `label` None means left out (`left_out` says why) or no value."""

    line: int
    clip: str
    label: str | None
    group: str | None = None
    left_out: str | None = None
    values: tuple[float, ...] | None = None


def nfc(text: str) -> str:
    """`text` in Unicode normalisation form C (composed accents), the form names are compared in."""
    return unicodedata.normalize("NFC", text)


def code_points(text: str) -> str:
    """`text` with each non-ASCII or unprintable character as its code point: `Cafe<U+0301>`."""
    return "".join(c if c.isascii() and c.isprintable() else f"<U+{ord(c):04X}>" for c in text)


def shown_id(text: str) -> str:
    """An id quoted for a message, followed by its code points where it holds non-ASCII characters."""
    return repr(text) if text.isascii() else f"{text!r} ({code_points(text)})"


def normalize_id(value: str) -> str:
    """Canonical clip id: NFC, POSIX separators, no audio extension or whitespace, numbers without zero padding.

    The zero-padding rule applies to every path component: `rock/001.mp3` and `rock/1` are one id.
    """
    parts = [part.strip() for part in nfc(str(value)).strip().replace("\\", "/").split("/")]
    parts = [part for part in parts if part not in ("", ".")]
    if parts and PurePosixPath(parts[-1]).suffix.lower() in AUDIO_EXTENSIONS:
        parts[-1] = PurePosixPath(parts[-1]).stem
    return "/".join(str(int(part)) if part.isdigit() else part for part in parts)


def clip_id(audio_dir: str | Path, file: Path) -> str:
    """A clip's identity: its path relative to the audio folder, without extension, with `/` separators, in NFC."""
    return nfc(_relative(Path(audio_dir), file).with_suffix("").as_posix())


def _relative(root: Path, file: Path) -> Path:
    """`file` relative to the audio folder `root` (just its name where it lies elsewhere)."""
    return file.relative_to(root) if root.is_dir() and file.is_relative_to(root) else Path(file.name)


def check_unicode_aliases(audio_dir: str | Path, files: list[Path]) -> None:
    """Refuse two file or folder names in one folder that differ only in Unicode normalisation (e.g. folders
    `Café` with a composed and with a decomposed `é`): they print alike and would name one clip, or one class."""
    root = Path(audio_dir)
    seen: dict[str, tuple[str, ...]] = {}
    for file in files:
        parts = _relative(root, file).parts
        for end in range(1, len(parts) + 1):
            other = seen.setdefault(nfc("/".join(parts[:end])), parts[:end])
            if other != parts[:end]:
                kind = "file names" if end == len(parts) else "folder names"
                raise MerError(
                    f"{root.joinpath(*parts[: end - 1])}: the {kind} {code_points(other[-1])} and "
                    f"{code_points(parts[end - 1])} differ only in how their accents are encoded (Unicode "
                    "normalisation), so they would name one clip or class; rename or merge one of them"
                )


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is one line naming the problem."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise MerError(f"{path}: damaged UTF-16 text ({exc.reason}); save it as UTF-8") from exc
    if b"\x00" in data:
        raise MerError(f"{path}: not UTF-8 (NUL bytes: UTF-16 without a byte-order mark?); save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MerError(
            f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start}, e.g. Latin-1 or Windows-1252 "
            "text); save it as UTF-8"
        ) from exc


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Columns and `(line number, row)` pairs of a CSV/TSV file (header = line 1), whatever its delimiter,
    byte-order mark or line ends."""
    if not path.is_file():
        raise MerError(f"{path}: labels file not found; check --labels")
    lines = nfc(_decode(path, path.read_bytes())).splitlines()
    if not lines or not lines[0].strip():
        raise MerError(f"{path}: the labels file is empty; it needs a header row")
    header = lines[0]
    delimiter = "\t" if "\t" in header else ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    columns = [c.strip() for c in reader.fieldnames or []]
    rows = [
        (reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}) for row in reader
    ]
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
    return _table(path, read, column, skip_unlabeled, cuts)


def _lines(rows: list[_Row]) -> str:
    """`rows 3, 5, 9 and 4 more` for an error message."""
    shown = ", ".join(str(row.line) for row in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _table(path: Path, rows: list[_Row], column: str, skip_unlabeled: bool, cuts: list[float] | None) -> LabelTable:
    """Check the rows (ids, missing values, duplicates) and build the table."""
    no_id = [row for row in rows if not row.clip]
    if no_id:
        raise MerError(
            f"{path}: {_lines(no_id)} ha{'ve' if len(no_id) > 1 else 's'} no id; fill it in or delete the row"
        )
    missing = [row for row in rows if row.label is None and row.left_out is None]
    if missing and not skip_unlabeled:
        raise MerError(
            f"{path}: {_lines(missing)} ha{'ve' if len(missing) > 1 else 's'} no usable value in column {column!r} "
            f"(blank, NaN or not a number); {SKIP_HINT}"
        )
    table = LabelTable({}, {}, str(path), cuts)
    first: dict[str, _Row] = {}
    for row in rows:
        if row.label is not None:
            check_class_name(row.label, f"{path}: row {row.line}: class", "rename it in the labels file")
        earlier = first.setdefault(row.clip, row)
        if earlier is not row:
            if _outcome(earlier) != _outcome(row):
                raise MerError(
                    f"{path}: id {row.clip!r} has conflicting labels in row {earlier.line} ({_outcome(earlier)}) "
                    f"and row {row.line} ({_outcome(row)}); keep one of the rows"
                )
            table.notes.append(
                f"{path.name}: id {row.clip!r} is listed twice (rows {earlier.line} and {row.line}) "
                "with the same label; counted once"
            )
            continue
        if row.label is not None:
            table.labels[row.clip] = ClipLabel(row.label, row.group or None, row.values)
        else:
            table.excluded[row.clip] = (
                row.left_out or f"no usable value in column {column!r} (row {row.line} of {path.name})"
            )
    return table


def check_class_name(name: str, what: str, fix: str) -> None:
    """Refuse a class name that cannot name a folder of the data set: `/`, `\\` or control characters, `.`,
    `..`, or a leading `.` (a hidden folder, which training would not read)."""
    check_component(name, what, f"a class names a folder of the data set: {fix}")
    if name.startswith("."):
        raise MerError(f"{what} {name!r} begins with '.', which would hide its folder from training; {fix}")


def _outcome(row: _Row) -> str:
    if row.values is not None:
        return ", ".join(f"{value:g}" for value in row.values)
    return row.label if row.label is not None else (row.left_out or "no value")


def _check_feature(feature: str, allowed: tuple[str, ...] | list[str], path: Path, kind: str) -> None:
    if feature not in allowed:
        raise MerError(f"{path}: {kind} cannot give feature {feature!r}; choose one of {', '.join(allowed)}")


def _group(row: dict[str, str], group_column: str | None) -> str | None:
    return row.get(group_column) if group_column else None


def _ratings(path, columns, rows, feature, group_column, cuts) -> tuple[list[_Row], str, list[float] | None]:
    """The study's mean-ratings file (number, valence, energy, tension, anger..tender, TARGET)."""
    _check_feature(feature, FEATURES, path, "a ratings file")
    number = find_column(columns, "number", path, "--labels")
    if feature == "emotions":
        target = find_column(columns, "TARGET", path, "--labels")
        read = []
        for line, row in rows:
            value = row[target]
            label = value.lower() if value.lower() in EMOTIONS else None
            left_out = None if label or _missing(value) else f"left out of feature 'emotions' (TARGET {value})"
            read.append(_Row(line, normalize_id(row[number]), label, _group(row, group_column), left_out))
        return read, target, None
    column = find_column(columns, feature, path, "--feature")
    return _binned(rows, number, column, feature, group_column, cuts)


def _binned(rows, id_col, column, feature, group_column, cuts) -> tuple[list[_Row], str, list[float]]:
    """Numeric ratings binned into three levels at `cuts` (default: tertiles of the values present)."""
    values = [_number(row[column]) for _, row in rows]
    present = np.array([v for v in values if v is not None])
    cuts = cuts or (tertile_cuts(present) if present.size else [])
    read = [
        _Row(
            line,
            normalize_id(row[id_col]),
            None if value is None else bin_value(value, cuts, level_names(feature)),
            _group(row, group_column),
        )
        for (line, row), value in zip(rows, values)
    ]
    return read, column, cuts


def _quadrants(path, columns, rows, feature, group_column) -> tuple[list[_Row], str]:
    """Quadrant annotations (Song, Quadrant[, Artist]) of Russell's circumplex model."""
    _check_feature(feature, list(QUADRANT_FEATURES), path, "a quadrant (Q1..Q4) file")
    quadrant = find_column(columns, "quadrant", path, "--labels")
    song = next((c for c in columns if c.lower() in {"song", "id", "song_id", "file"}), columns[0])
    mapping = QUADRANT_FEATURES[feature]
    read = []
    for line, row in rows:
        value = row[quadrant].upper()
        if value not in mapping and not _missing(value):
            raise MerError(
                f"{path}: quadrant {row[quadrant]!r} of {row[song]!r} (row {line}) is not one of Q1..Q4; fix the file"
            )
        read.append(_Row(line, normalize_id(row[song]), mapping.get(value), _group(row, group_column)))
    return read, quadrant


def _generic(path, columns, rows, feature, id_column, label_column, group_column, cuts):
    """Any CSV: class names in a column, or numeric ratings binned into three levels.

    A column is ratings when `cuts` are given or when most cells that hold a value are numbers, with more than
    10 distinct values; its other cells (blank, NaN, text) then have no usable value.
    """
    id_col = find_column(columns, id_column, path, "--id-column")
    label_col = find_column(columns, label_column, path, "--label-column")
    present = [row[label_col] for _, row in rows if not _missing(row[label_col])]
    numbers = [value for value in map(_number, present) if value is not None]
    if cuts or (len(numbers) * 2 > len(present) and len(set(numbers)) > 10):
        return _binned(rows, id_col, label_col, feature, group_column, cuts)
    read = [
        _Row(
            line,
            normalize_id(row[id_col]),
            None if _missing(row[label_col]) else row[label_col].lower(),
            _group(row, group_column),
        )
        for line, row in rows
    ]
    return read, label_col, None


def _missing(text: str) -> bool:
    return text.strip().lower() in MISSING


def _number(text: str) -> float | None:
    """The cell as a finite number, or None (blank, NaN, infinite or not a number)."""
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if np.isfinite(value) else None


RATING_SCALE = (1.0, 9.0)  # the study's ratings file: every scale runs from 1 to 9


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
    values = [tuple(_number(row[column]) for column in found) for _, row in rows]
    present = np.array([v for v in values if None not in v], dtype=float).reshape(-1, len(found))
    outliers = _outliers(path, rows, values, found, allow_outliers)
    scale = {name: _scale(path, column, present[:, i], known) for i, (name, column) in enumerate(zip(targets, found))}
    cuts = tertile_cuts(present[:, 0]) if len(present) else []
    levels = level_names(targets[0])
    read = [
        _Row(
            line,
            normalize_id(row[id_col]),
            None if None in value else bin_value(value[0], cuts, levels),
            _group(row, group_column),
            values=None if None in value else value,  # type: ignore[arg-type]
        )
        for (line, row), value in zip(rows, values)
    ]
    table = _table(path, read, ", ".join(found), skip_unlabeled, cuts)
    table.task, table.targets, table.scale = "regression", list(targets), scale
    table.notes += outliers
    return table


def _refuse_infinite(path: Path, rows: list[tuple[int, dict[str, str]]], columns: list[str]) -> None:
    """Refuse cells that are numbers but not finite (`inf`, `1e999`): a value no scale holds, not a blank."""
    bad = [
        (line, column, row[column])
        for line, row in rows
        for column in columns
        if not _missing(row[column]) and _number(row[column]) is None and _is_float(row[column])
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


MOOD_THRESHOLD = 0.5  # multilabel from vote shares: a mood holds with at least this share of the clip's top share


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
    if bool(targets) == bool(label_column):
        raise MerError("--task multilabel needs the moods: --label-column COL (';'-separated moods) or one --target "
                       "COL per mood (0/1 flags or vote shares), not both")  # fmt: skip
    if threshold is not None and not (0 < threshold <= 1 and targets):
        raise MerError(f"--threshold {threshold}: must lie in (0, 1] and comes with --target mood columns")
    columns, rows = read_rows(path)
    id_col = _id_column(path, columns, id_column)
    group_column = find_column(columns, group_by, path, "--group-by") if group_by else None
    if label_column:
        column = find_column(columns, label_column, path, "--label-column")
        sets = [None if _missing(row[column]) else _mood_set(row[column]) or None for _, row in rows]
        moods = sorted({mood for chosen in sets if chosen for mood in chosen})
        where = column
    else:
        found = [find_column(columns, name, path, "--target") for name in targets or []]
        moods, where = list(targets or []), ", ".join(found)
        _refuse_infinite(path, rows, found)
        _refuse_negative(path, rows, found)
        sets = [_chosen(moods, [_number(row[c]) for c in found], threshold or MOOD_THRESHOLD) for _, row in rows]
    bad = next((mood for mood in moods if "/" in mood or "\\" in mood or mood.startswith(".")), None)
    if bad is not None:
        raise MerError(f"{path}: mood {bad!r} cannot name a folder ('/', '\\' or a leading '.'); rename it")
    read = [
        _Row(line, normalize_id(row[id_col]), None if chosen is None else "+".join(sorted(chosen)) or "none",
             _group(row, group_column), values=None if chosen is None else tuple(float(m in chosen) for m in moods))
        for (line, row), chosen in zip(rows, sets)
    ]  # fmt: skip
    table = _table(path, read, where, skip_unlabeled, None)
    never = [mood for i, mood in enumerate(moods) if not any(c.values and c.values[i] for c in table.labels.values())]
    if never:
        raise MerError(f"{path}: mood(s) {', '.join(never)} hold for no clip; drop them or lower --threshold")
    table.task, table.targets = "multilabel", moods
    return table


def _refuse_negative(path: Path, rows: list[tuple[int, dict[str, str]]], columns: list[str]) -> None:
    """Refuse negative numbers in mood columns, which hold 0/1 flags or vote shares."""
    bad = [
        (line, column, row[column])
        for line, row in rows
        for column in columns
        if (value := _number(row[column])) is not None and value < 0
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
            f"{path}: column {column!r} holds the one value {values[0]:g} for every clip; a regression target "
            "must vary: choose another --target"
        )
    if known and len(values) and known[0] <= values.min() and values.max() <= known[1]:
        return list(known)
    return [float(values.min()), float(values.max())] if len(values) else []


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


def match_clips(
    audio_dir: str | Path, files: list[Path], table: LabelTable
) -> tuple[list[tuple[Path, str, ClipLabel]], list[tuple[Path, str]], list[Path]]:
    """Pair audio files with the table's rows: `(file, clip id, label)` of the labelled files, `(file, why)`
    of those the table leaves out, and the files without a row.

    An id with a folder separator names a clip by its path relative to `audio_dir`; any other id names it
    by file name, and must then name one clip only. Names are compared in NFC (see `check_unicode_aliases`).
    """
    check_unicode_aliases(audio_dir, files)
    ids = {file: clip_id(audio_dir, file) for file in files}
    by_path: dict[str, list[Path]] = defaultdict(list)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for file, name in ids.items():
        by_path[normalize_id(name)].append(file)
        by_stem[normalize_id(file.name)].append(file)
    found: dict[Path, tuple[str, ClipLabel | str]] = {}
    for key, value in [*table.labels.items(), *table.excluded.items()]:
        candidates = (by_path if "/" in key else by_stem).get(key, [])
        if len(candidates) > 1:
            first, second = candidates[:2]
            raise MerError(
                f"{table.source}: id {key!r} matches more than one clip ({first} and {second}); use ids with the "
                f"folder, relative to {audio_dir} (e.g. {ids[first]!r}), or rename one of the files"
            )
        for file in candidates:
            earlier = found.setdefault(file, (key, value))
            if earlier[1] != value:
                raise MerError(
                    f"{table.source}: ids {earlier[0]!r} and {key!r} both name {file} but give different labels; "
                    "keep one of the rows"
                )
    matched: list[tuple[Path, str, ClipLabel]] = []
    excluded: list[tuple[Path, str]] = []
    unlabeled: list[Path] = []
    for file in files:
        value = found.get(file, ("", None))[1]
        if isinstance(value, ClipLabel):
            matched.append((file, ids[file], value))
        elif value is not None:
            excluded.append((file, value))
        else:
            unlabeled.append(file)
    return matched, excluded, unlabeled


def unlabeled_error(audio_dir: str | Path, unlabeled: list[Path], table: LabelTable) -> MerError:
    """The one-line error for audio files without a row in the labels file."""
    first = unlabeled[0]
    return MerError(
        f"{first}: id {shown_id(clip_id(audio_dir, first))} has no row in {table.source} ({len(unlabeled)} file(s) "
        "unlabeled); add the rows or pass --skip-unlabeled"
    )


def labelled_files(
    audio_dir: str | Path, files: list[Path], table: LabelTable, skip_unlabeled: bool
) -> tuple[list[tuple[Path, str, ClipLabel]], list[SkippedFile]]:
    """`match_clips` for the inference verbs (evaluate, embed): the matched files, and those left out with
    why (left out by the feature, or with --skip-unlabeled no row); unlabeled files are otherwise an error."""
    matched, excluded, unlabeled = match_clips(audio_dir, files, table)
    if unlabeled and not skip_unlabeled:
        raise unlabeled_error(audio_dir, unlabeled, table)
    skipped = [SkippedFile(str(file), f"{reason} ({table.source})") for file, reason in excluded]
    skipped += [SkippedFile(str(file), f"no row in {table.source}") for file in unlabeled]
    return matched, skipped
