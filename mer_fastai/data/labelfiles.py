"""Reading a labels file: its text (encoding, delimiter, byte-order mark), its ids and cells, and the checked table.

Every reader (`labels`, `targets`) returns a `LabelTable` for one feature (task), keyed by normalised ids: `1`,
`001` and `001.mp3` name the same clip; an id with a folder (`rock/001.mp3`) names the clip by its path relative
to the audio folder. Ids, file and folder names are compared in Unicode NFC (`Café` typed with a composed or a
decomposed `é` is one name). A labels file is checked as it is read: its encoding, blank ids, blank or
non-numeric cells, class names that cannot name a folder and duplicate ids (the same label: a note; conflicting
labels: an error).
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .._plumbing.files import check_component, check_input_file
from ..bounds import QUOTE_LIMIT, quote
from ..errors import MerError
from .audio import AUDIO_EXTENSIONS

MISSING = frozenset({"", "nan", "na", "n/a"})  # cells that hold no value
SKIP_HINT = "fill them in, or pass --skip-unlabeled to leave those clips out"


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
    targets: list[str] = field(default_factory=list)  # regression: the target columns (`values`: the targets');
    # multilabel: the moods (`values`: 1/0 per mood); classification: none
    scale: dict[str, list[float]] = field(default_factory=dict)  # regression: target → [low, high]


@dataclass(frozen=True)
class Row:
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
    text = text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "..."
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
    check_input_file(path, "the labels file", "pass a CSV or TSV file to --labels")
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
    raise MerError(f"{path}: no column {quote(name)} (columns: {', '.join(columns)}); fix {option}")


def _lines(rows: list[Row]) -> str:
    """`rows 3, 5, 9 and 4 more` for an error message."""
    shown = ", ".join(str(row.line) for row in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def make_table(path: Path, rows: list[Row], column: str, skip_unlabeled: bool, cuts: list[float] | None) -> LabelTable:
    """Check the rows (ids, missing values, duplicates) and build the table."""
    no_id = [row for row in rows if not row.clip]
    if no_id:
        raise MerError(
            f"{path}: {_lines(no_id)} ha{'ve' if len(no_id) > 1 else 's'} no id; fill it in or delete the row"
        )
    missing = [row for row in rows if row.label is None and row.left_out is None]
    if missing and not skip_unlabeled:
        raise MerError(
            f"{path}: {_lines(missing)} ha{'ve' if len(missing) > 1 else 's'} no usable value in "
            f"column {quote(column)} (blank, NaN or not a number); {SKIP_HINT}"
        )
    table = LabelTable({}, {}, str(path), cuts)
    first: dict[str, Row] = {}
    for row in rows:
        if row.label is not None:
            check_class_name(row.label, f"{path}: row {row.line}: class", "rename it in the labels file")
        earlier = first.setdefault(row.clip, row)
        if earlier is not row:
            if _outcome(earlier) != _outcome(row):
                raise MerError(
                    f"{path}: id {quote(row.clip)} has conflicting labels in row {earlier.line} ({_outcome(earlier)}) "
                    f"and row {row.line} ({_outcome(row)}); keep one of the rows"
                )
            table.notes.append(
                f"{path.name}: id {quote(row.clip)} is listed twice (rows {earlier.line} and {row.line}) "
                "with the same label; counted once"
            )
            continue
        if row.label is not None:
            table.labels[row.clip] = ClipLabel(row.label, row.group or None, row.values)
        else:
            table.excluded[row.clip] = (
                row.left_out or f"no usable value in column {quote(column)} (row {row.line} of {path.name})"
            )
    return table


def check_class_name(name: str, what: str, fix: str) -> None:
    """Refuse a class name that cannot name a folder of the data set: `/`, `\\` or control characters, `.`,
    `..`, or a leading `.` (a hidden folder, which training would not read)."""
    check_component(name, what, f"a class names a folder of the data set: {fix}")
    if name.startswith("."):
        raise MerError(f"{what} {quote(name)} begins with '.', which would hide its folder from training; {fix}")


def _outcome(row: Row) -> str:
    if row.values is not None:
        return ", ".join(f"{value:g}" for value in row.values)
    return row.label if row.label is not None else (row.left_out or "no value")


def group_cell(row: dict[str, str], group_column: str | None) -> str | None:
    return row.get(group_column) if group_column else None


def is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING


def cell_number(text: str) -> float | None:
    """The cell as a finite number, or None (blank, NaN, infinite or not a number)."""
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if np.isfinite(value) else None
