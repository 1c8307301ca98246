"""Outputs replace only what the same command wrote: another command's output folder, a model file another
command wrote, or a user's file of the same name is refused in one line before anything is written.

Two marks say who wrote what:
- an output folder holds `OWNER_FILE`, naming the kind of output it holds ("run": train, lrfind and cv's folds;
  "evaluate"); folders an older version wrote are recognised by their `metrics.json` (`LEGACY`);
- a model file's safetensors header names the command that wrote it (`WRITER_KEY`: train, export, ensemble, cv).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .._plumbing.files import atomic_write
from ..errors import MerError
from .layout import (
    CV_FILE,
    ENSEMBLE_FILE,
    LR_JSON,
    METRICS_FILE,
    MODEL_FILE,
    OWNER_FILE,
    RESULTS_CSV,
    model_header,
    model_writer,
    read_json_or_empty,
)

# what an older version's folder of each kind holds in its metrics.json (or lr_find.json), having no OWNER_FILE
LEGACY = {"run": ((METRICS_FILE, "epochs_run"), (LR_JSON, "suggestions")), "evaluate": ((METRICS_FILE, "audio_dir"),)}
KIND_NAMES = {"run": "a training run (train, lrfind or a cv fold)", "evaluate": "`mer-fastai evaluate`"}


def folder_owner(folder: Path) -> str | None:
    """The kind of output `folder` holds ("run", "evaluate", ...), from its mark or an older version's records;
    None for a folder no mer-fastai command marked."""
    try:
        mark = (folder / OWNER_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        mark = ""
    if mark:
        return mark
    for kind, records in LEGACY.items():
        if any(key in read_json_or_empty(folder / name) for name, key in records):
            return kind
    return None


def check_own_folder(out: Path, kind: str, names: Iterable[str], option: str = "--out") -> None:
    """Refuse, before anything is written, an `out` holding a file among `names` (what `kind` writes there)
    that an earlier output of the same kind did not write: another command's folder, or the user's own file."""
    out = Path(out)
    present = [name for name in names if (out / name).exists() or (out / name).is_symlink()]
    owner = folder_owner(out) if out.is_dir() else None
    if not present or owner == kind:
        return
    said = f"this folder holds the output of {KIND_NAMES.get(owner, owner)}" if owner else "mer-fastai did not write it"
    raise MerError(
        f"{out / present[0]}: {said}, so {KIND_NAMES.get(kind, kind)} does not replace it; choose a new or empty "
        f"{option} (or move the file away)"
    )


def claim_folder(out: Path, kind: str) -> None:
    """Mark `out` as holding `kind`'s output (before its first file is written there)."""
    if folder_owner(out) != kind or not (out / OWNER_FILE).is_file():
        atomic_write(out / OWNER_FILE, kind + "\n")


def check_model_out(target: Path, command: str, option: str = "--out") -> None:
    """A model file `command` (export, ensemble) may write: not as the model of another command's output folder
    (whose records describe the model there: its model.safetensors, ensemble.safetensors or any file already
    there), and not over a file it did not write itself (a user's file, a run's model, or an
    older version's file, which does not say who wrote it)."""
    folder = target.parent
    owner = folder_owner(folder) if folder.is_dir() else None
    records = [name for name in (CV_FILE, RESULTS_CSV) if (folder / name).is_file()]
    # a new file of another name beside a run's records replaces nothing and is taken for no run's model
    theirs = target.exists() or target.is_symlink() or target.name == MODEL_FILE
    theirs |= target.name == ENSEMBLE_FILE and CV_FILE in records  # a cross-validation's fold ensemble
    if (owner or records) and theirs:
        what = KIND_NAMES.get(owner, owner) if owner else f"a folder holding {records[0]}"
        raise MerError(
            f"{option} {target}: {folder} holds the output of {what}, whose records describe its own model; "
            f"{command} does not write there: choose another {option} (e.g. a new NAME.safetensors)"
        )
    if not (target.exists() or target.is_symlink()):
        return
    writer = model_writer(target)
    if writer == command:
        return
    if model_header(target) is None:
        said = "is not a model file (a file of yours?)"
    else:
        who = f"`mer-fastai {writer}`" if writer else "another command or an older version"
        said = f"is a model file {who} wrote"
    raise MerError(
        f"{target}: {said}; {command} replaces only a model file it wrote itself: choose another {option} "
        "(or move the file away)"
    )
