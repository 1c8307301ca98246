"""`embed`'s output files: the embeddings as .npz or .parquet, and a musicnn model's tag probabilities as CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .._plumbing.files import atomic_path, check_output_file, check_replaceable
from ..errors import MerError
from ..runs.inputs import refuse_input_out
from .embed import Embeddings
from .own_files import is_embeddings, is_tags

EMBED_FORMATS = (".npz", ".parquet")


def check_embed_out(out: str | Path) -> Path:
    """`--out` as an .npz or .parquet file; .parquet needs pyarrow. Checked before any work is done."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in EMBED_FORMATS:
        raise MerError(f"--out {out}: unknown extension; use .npz or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise MerError(f"--out {out}: writing parquet needs pyarrow; use .npz or `pip install pyarrow`") from exc
    return check_output_file(out, "--out")


def check_embed_owner(out: Path) -> None:
    """`out` and its `tags_file`, each new, empty or embed's own earlier output; anything else is refused (after
    the checks that name an input, which say more)."""
    check_replaceable(out, is_embeddings, "embed")
    check_replaceable(tags_file(out), is_tags, "embed")


def write_embeddings(embeddings: Embeddings, out: str | Path) -> Path:
    """Write .npz (arrays named as `Embeddings.arrays`, plus `info` JSON) or .parquet (one row per window
    and per track, `level` telling which, `features` a list column; `info` in the file's metadata); a musicnn
    model's tags also as `tags_file(out)` (see `write_tags`)."""
    out = check_embed_out(out)
    refuse_embed_inputs([out, *([tags_file(out)] if embeddings.tags else [])], embeddings)
    check_embed_owner(out)
    info = json.dumps(embeddings.info())
    if out.suffix.lower() == ".npz":
        with atomic_path(out) as tmp, tmp.open("wb") as handle:
            np.savez_compressed(handle, info=np.array(info), **embeddings.arrays())
    else:
        _write_parquet(embeddings, out, info)
    if embeddings.tags:
        write_tags(embeddings, tags_file(out))
    return out


def tags_file(out: str | Path) -> Path:
    """Where `write_embeddings` puts a musicnn model's tag probabilities: `<out stem>-tags.csv` beside `out`."""
    out = Path(out)
    return out.with_name(f"{out.stem}-tags.csv")


def write_tags(embeddings: Embeddings, path: Path) -> Path:
    """The tag probabilities as CSV: one row per window, then one per track (the mean of its windows); columns
    level (window or track), file, clip_id, start (empty for a track), windows, then one column per tag."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["level", "file", "clip_id", "start", "windows", *embeddings.tags])
        e = embeddings
        for file, clip, start, tags in zip(e.window_file, e.window_clip_id, e.window_start, e.window_tags, strict=True):
            writer.writerow(["window", file, clip, f"{start:.3f}", 1, *(f"{p:.6f}" for p in tags)])
        for file, clip, count, tags in zip(e.track_file, e.track_clip_id, e.track_windows, e.track_tags, strict=True):
            writer.writerow(["track", file, clip, "", count, *(f"{p:.6f}" for p in tags)])
    return path


def refuse_embed_inputs(outputs: list[Path], embeddings: Embeddings) -> None:
    """One line when a file to write is the model the embeddings came from or one of its audio files."""
    refuse_input_out(outputs, embeddings.model, [*embeddings.track_file, *(item.file for item in embeddings.skipped)])


def _write_parquet(embeddings: Embeddings, out: Path, info: str) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    a = embeddings.arrays()
    n_windows, n_tracks = len(a["window_file"]), len(a["track_file"])
    columns = {
        "level": ["window"] * n_windows + ["track"] * n_tracks,
        "file": [*a["window_file"], *a["track_file"]],
        "clip_id": [*a["window_clip_id"], *a["track_clip_id"]],
        "start": [*a["window_start"].tolist(), *[None] * n_tracks],
        "windows": [1] * n_windows + a["track_windows"].tolist(),
        "label": [*a["window_label"], *a["track_label"]],
        "predicted": [*a["window_predicted"], *a["track_predicted"]],
        "features": [*a["window_features"].tolist(), *a["track_features"].tolist()],
    }
    table = pa.table(columns).replace_schema_metadata({"mer_fastai": info})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out
