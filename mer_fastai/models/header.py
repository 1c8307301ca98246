"""A model file's names and header, read without torch: the file names, the safetensors metadata keys, and the
light readers of a file's record and writer (`modelfile` writes and verifies them; `runs.layout` lists the names
in its folder schema).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

__all__ = ["MODEL_FILE", "ENSEMBLE_FILE", "model_file_path", "model_header", "model_writer"]

MODEL_FILE = "model.safetensors"  # a run folder's model
ENSEMBLE_FILE = "ensemble.safetensors"  # a cross-validation folder's fold models as one ensemble
METADATA_KEY = "mer_fastai"  # the safetensors metadata key that holds a model file's JSON
WRITER_KEY = "written_by"  # the safetensors metadata key naming the command that wrote a model file
RUN_CONFIG = "config.json"  # the training settings beside a run's model (older files' resize policy is read there)


def model_file_path(path: str | Path) -> Path:
    """The model file itself, given the file, a run folder, or a cross-validation folder (its fold ensemble)."""
    path = Path(path)
    if not path.is_dir():
        return path
    ensemble = path / ENSEMBLE_FILE
    return ensemble if ensemble.is_file() and not (path / MODEL_FILE).is_file() else path / MODEL_FILE


def run_settings(model_path: Path) -> dict:
    """The settings of the run whose folder holds `model_path` (its config.json); {} when missing or unreadable."""
    try:
        record = json.loads((model_path.parent / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _safetensors_metadata(path: Path) -> dict | None:
    """The `__metadata__` table of a safetensors file's header; None when it cannot be read (or is no regular
    file: a pipe would block)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > path.stat().st_size - 8:
                return None
            header = json.loads(handle.read(size))
        metadata = header.get("__metadata__") or {}
    except (OSError, struct.error, ValueError, AttributeError):
        return None
    return metadata if isinstance(metadata, dict) else None


def model_writer(path: str | Path) -> str | None:
    """The command that wrote a model file ("train", "export", "ensemble", "cv"); None for a file that does not
    say (an older version's, or not a model file)."""
    writer = (_safetensors_metadata(model_file_path(path)) or {}).get(WRITER_KEY)
    return writer if isinstance(writer, str) else None


def model_header(path: str | Path) -> dict | None:
    """A model file's metadata, read from its safetensors header alone (no torch, no weights); None when the
    file is missing or is not a model file. The checksum is not verified: use `models.modelfile` for that."""
    raw = (_safetensors_metadata(model_file_path(path)) or {}).get(METADATA_KEY)
    try:
        metadata = json.loads(raw) if raw else None
    except (ValueError, TypeError):
        return None
    return metadata if isinstance(metadata, dict) else None
