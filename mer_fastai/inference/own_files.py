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
from pathlib import Path

from .._plumbing.files import file_head, is_mer_page

PREDICTION_KEYS = {"tracks", "skipped", "window", "hop", "aggregate", "task", "classes"}
EMBEDDING_ARRAYS = {"info.npy", "window_features.npy", "track_features.npy", "track_file.npy"}
TAGS_HEADER = ["level", "file", "clip_id", "start", "windows"]


def _first_row(path: Path) -> list[str]:
    return next(csv.reader(file_head(path).splitlines()[:1]), [])


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
    return is_mer_page(path, "Embedding map of")


def is_map_figure(path: Path) -> bool:
    """Whether `path` is embed's map figure: a PNG file with embed's map page beside it."""
    page = path.with_name(path.name.removesuffix(".png") + ".html")
    with path.open("rb") as handle:
        png = handle.read(8) == b"\x89PNG\r\n\x1a\n"
    return png and page.is_file() and is_map_page(page)
