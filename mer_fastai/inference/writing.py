"""`predict`'s output files: the format chosen from `--out`/`--format`, and the JSON or CSV text of the tracks."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .._plumbing.files import atomic_write, check_replaceable
from ..bounds import quote
from ..choices import FORMATS
from ..errors import MerError
from ..runs.inputs import refuse_input_out
from .own_files import is_predictions
from .tracks import MIXED_NOTE, Predictions

if TYPE_CHECKING:
    from .predict import Predictor


def output_format(out: Path | None, fmt: str | None) -> str:
    """The format to write: --format, else the --out extension (.json or .csv), else json (standard output).

    `--out` naming a folder, a --format that contradicts a .json/.csv extension, and any other extension
    without --format are refused; an explicit --format may name any other extension (`--out x.txt --format csv`).
    """
    if fmt is not None and fmt not in FORMATS:
        raise MerError(f"unknown --format {quote(fmt)}; choose one of {', '.join(FORMATS)}")
    if out is None:
        return fmt or "json"
    if out.is_dir():
        raise MerError(f"--out {out}: is a folder; name a file such as {out / 'predictions.json'}")
    suffix = out.suffix.lstrip(".").lower()
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise MerError(
                f"--out {out} --format {fmt}: the extension says {suffix}; drop --format or use "
                f"--out {out.with_suffix('.' + fmt)}"
            )
        fmt = suffix
    elif fmt is None:
        raise MerError(f"--out {out}: unknown extension; use .json or .csv, or pass --format")
    return fmt


def check_predictions_out(out: Path) -> Path:
    """`out` as a predictions file: new, empty or predict's own earlier output (JSON or CSV), else refused."""
    return check_replaceable(out, is_predictions, "predict")


def render_predictions(predictions: Predictions, predictor: Predictor, fmt: str) -> str:
    """JSON (every track with its windows) or CSV (one row per track) text of `predictions`.

    CSV columns: file, then the task's label columns (a classifier's label, a multilabel model's `moods`
    ";"-joined, nothing for regression); duration, windows (a mixed-input ensemble's count per input,
    ";"-joined); then `prob_<class or mood>`, or a regression model's `pred_<target>`."""
    classes = predictor.classes
    if fmt == "json":
        document = {
            "model": str(predictor.source) if predictor.source else None,
            "feature": predictor.feature,
            "task": predictor.task.name,
            "classes": classes,
            **({"threshold": predictor.threshold} if predictor.threshold is not None else {}),
            **({"scale": [list(pair) for pair in predictor.meta.scale]} if predictor.meta.scale else {}),
            "window": predictions.window,
            "hop": predictions.hop,
            "aggregate": predictions.aggregate,
            **({"inputs": predictions.inputs, "note": MIXED_NOTE} if predictions.inputs else {}),
            "tracks": [track.to_dict(predictions.window) for track in predictions],
            "skipped": [dataclasses.asdict(item) for item in predictions.skipped],
        }
        return json.dumps(document, indent=2) + "\n"
    task = predictor.task
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *task.facts.label_columns, "duration", "windows", *task.columns(classes)])
    for track in predictions:
        cells = [f"{track.outputs[name]:.6f}" for name in classes]
        writer.writerow([track.file, *(track.label for _ in task.facts.label_columns), f"{track.duration:.3f}",
                         track.n_windows, *cells])  # fmt: skip
    return buffer.getvalue()


def write_predictions(predictions: Predictions, predictor: Predictor, out: Path, fmt: str) -> Path:
    """Write `render_predictions` to `out` atomically (nothing is left behind when writing fails); an `out` that is
    the model or one of the files predicted is refused."""
    files = [track.file for track in predictions] + [item.file for item in predictions.skipped]
    refuse_input_out([out], predictor.source, files)
    check_predictions_out(out)
    text = render_predictions(predictions, predictor, fmt)
    try:
        return atomic_write(out, text)
    except OSError as exc:
        raise MerError(
            f"--out {out}: cannot write ({exc.strerror or exc}); free space or choose another --out"
        ) from exc
