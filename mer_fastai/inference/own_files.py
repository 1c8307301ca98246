"""Which existing files `predict` and `embed` may replace: an empty file, or their own earlier output.

A rerun over its own output replaces it; a user's file of the same name (or another command's file) is refused
in one line before any work, naming the file and the fix, and stays as it was. Each file is recognised by what
the command writes there:
- predictions: predict's JSON document (its `tracks`, `skipped`, `window`, `hop`, `aggregate`, `task` and `classes`
  keys) or its CSV header (`file`, the label columns, `duration`, `windows`, ...), in either format;
- embeddings: an .npz holding `info` and the feature arrays, or a .parquet file carrying embed's `mer_fastai`
  metadata;
- a musicnn model's `<out>-tags.csv`: its header `level,file,clip_id,start,windows,...`;
- the map: `<out>-map.html` is a mer-fastai page titled "Embedding map of ..."; `<out>-map.png` is replaced
  only with that page beside it.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from .._plumbing.files import check_output_file
from ..errors import MerError

HEAD_BYTES = 65536  # how much of a file its first line or header is looked for in
PREDICTION_KEYS = {"tracks", "skipped", "window", "hop", "aggregate", "task", "classes"}
EMBEDDING_ARRAYS = {"info.npy", "window_features.npy", "track_features.npy", "track_file.npy"}
TAGS_HEADER = ["level", "file", "clip_id", "start", "windows"]


def _first_row(path: Path) -> list[str]:
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES).decode("utf-8", errors="replace")
    return next(csv.reader(head.splitlines()[:1]), [])


def is_predictions(path: Path) -> bool:
    """Whether `path` holds predict's output, as JSON or CSV."""
    row = _first_row(path)
    if row[:1] == ["file"] and "duration" in row and row[row.index("duration") + 1 :][:1] == ["windows"]:
        return True
    if not row or not row[0].lstrip().startswith("{"):
        return False
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and document.keys() >= PREDICTION_KEYS


def is_embeddings(path: Path) -> bool:
    """Whether `path` holds embed's output: its .npz arrays, or a .parquet file with embed's metadata."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq

            return b"mer_fastai" in (pq.read_schema(path).metadata or {})
        except Exception:  # not a parquet file at all (pyarrow raises its own kinds)
            return False
    try:
        with zipfile.ZipFile(path) as archive:
            return set(archive.namelist()) >= EMBEDDING_ARRAYS
    except (zipfile.BadZipFile, OSError):
        return False


def is_tags(path: Path) -> bool:
    """Whether `path` holds embed's musicnn tag probabilities."""
    return _first_row(path)[: len(TAGS_HEADER)] == TAGS_HEADER


def is_map_page(path: Path) -> bool:
    """Whether `path` is embed's map page."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES).decode("utf-8", errors="replace")
    return '<meta name="generator" content="mer-fastai' in head and "<title>Embedding map of" in head


def is_map_figure(path: Path) -> bool:
    """Whether `path` is embed's map figure: a PNG file with embed's map page beside it."""
    page = path.with_name(path.name.removesuffix(".png") + ".html")
    with path.open("rb") as handle:
        png = handle.read(8) == b"\x89PNG\r\n\x1a\n"
    return png and page.is_file() and is_map_page(page)


def check_replaceable(path: str | Path, own: Callable[[Path], bool], command: str, option: str = "--out") -> Path:
    """`path` as a file `command` may write: new, empty, or its own earlier output (`own` says which); anything
    else (a user's file of the same name, a link, a write-protected file) is refused in one line. Nothing is
    created here: the folder is made when the file is written."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return path
    check_output_file(path, option)
    if path.is_symlink():
        raise MerError(f"{path}: is a link, and {command} does not write through links; choose another {option}")
    if path.is_file() and path.stat().st_size == 0:
        return path
    try:
        mine = path.is_file() and own(path)
    except OSError:
        mine = False
    if not mine:
        raise MerError(
            f"{path}: {command} did not write this file (a file of yours?), so it does not replace it; choose "
            f"another {option} (or remove the file)"
        )
    return path
