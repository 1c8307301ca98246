"""What a data set folder already holds: prepare's journal of started and finished clips (what a rerun reuses),
the settings it was made with, and the removal of its own files, never anyone else's.

prepare deletes or overwrites only what its own records list (the manifest's and journal's images,
dataset.json, manifest.csv, spectrogram.json, the journal).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._plumbing.jsonlines import append_entry, open_to_append, read_entries
from .._plumbing.locks import excluding_readers
from ..data.dataset import DATASET_FILE, MANIFEST_FILE, SPLITS, ManifestRow, read_info, read_manifest
from ..data.spectrogram import SPEC_FILE
from ..errors import MerError
from .clips import ClipJob

JOURNAL_FILE = ".progress.jsonl"  # one line per started and per finished clip: what a rerun reuses or removes
OWN_FILES = (DATASET_FILE, MANIFEST_FILE, SPEC_FILE, JOURNAL_FILE)  # besides the images
IMAGE_NAME = re.compile(r"(?P<key>.+)_\d{8}\.png")  # <clip key>_<window start in ms>.png


@dataclass(frozen=True)
class Finished:
    """A clip an earlier run finished, as its journal entry says."""

    task: dict
    rows: list[ManifestRow]


def read_journal(out_dir: Path) -> tuple[dict[str, Finished], set[str]]:
    """The clips finished by earlier runs, by key (the last entry of a key wins; a torn or malformed line
    is ignored), and every image the journal says was written: those of finished clips, and those on disk of
    clips a killed run had started."""
    done: dict[str, Finished] = {}
    written: set[str] = set()
    started: dict[str, set[str]] = defaultdict(set)  # folder → keys
    for entry in read_entries(out_dir / JOURNAL_FILE):
        try:
            if "started" in entry:
                started[entry["started"]["folder"]].add(entry["started"]["key"])
                continue
            finished = Finished(entry["task"], [ManifestRow.from_dict(row) for row in entry["rows"]])
            done[entry["task"]["key"]] = finished
        except (KeyError, TypeError, ValueError):
            continue
        written.update(row.image for row in finished.rows)
    written |= _started_images(out_dir, started)
    return done, {image for image in written if own_image(image)}


def _started_images(out_dir: Path, started: dict[str, set[str]]) -> set[str]:
    """The images on disk of the started clips (`<folder>/<key>_<ms>.png`), finished or not."""
    found = set()
    for folder, keys in started.items():
        if not own_image(f"{folder}/x.png") or not (out_dir / folder).is_dir():
            continue
        for path in (out_dir / folder).iterdir():
            match = IMAGE_NAME.fullmatch(path.name)
            if match and match["key"] in keys:
                found.add(f"{folder}/{path.name}")
    return found


def own_image(image: str) -> bool:
    """Whether `image` has the form of prepare's images, `<split>/<class>/<name>.png`, inside the data set."""
    parts = image.split("/")
    names_ok = all(part not in ("", ".", "..") and "\\" not in part for part in parts)
    return len(parts) == 3 and parts[0] in SPLITS and names_ok and parts[2].endswith(".png")


def open_journal(path: Path, settings: dict) -> BinaryIO:
    """The journal, opened to append on a line of its own.

    A new journal starts with the run's settings, so that a rerun with other settings is refused even
    before the first run has finished.
    """
    journal = open_to_append(path)
    if not journal.tell():
        append_entry(journal, {"settings": settings})
    return journal


def reusable_rows(entry: Finished | None, job: ClipJob, out_dir: Path) -> list[ManifestRow] | None:
    """Rows of a clip finished by an earlier run, if it was made as the same clip job and its images exist."""
    if entry is None or entry.task != job.to_dict():
        return None
    if not all(row.path(out_dir).exists() for row in entry.rows):
        return None
    return entry.rows


def saved_settings(out_dir: Path) -> dict | None:
    """The settings `out_dir` was prepared with: from dataset.json, or the journal of an unfinished run."""
    if (out_dir / DATASET_FILE).exists():
        return read_info(out_dir).settings
    try:
        with (out_dir / JOURNAL_FILE).open() as journal:
            return json.loads(journal.readline()).get("settings")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def check_existing(out_dir: Path, settings: dict, overwrite: bool, change: Change) -> None:
    """Refuse to mix two different preparations in one folder (the caller holds its lock); `overwrite` deletes
    the earlier data set's own files first."""
    if overwrite and ((out_dir / DATASET_FILE).exists() or (out_dir / JOURNAL_FILE).exists()):
        change()
        remove_own_files(out_dir)
        return
    saved = saved_settings(out_dir)
    if saved is None:
        if any(any((out_dir / split).glob("*")) for split in SPLITS):
            raise MerError(
                f"{out_dir}: holds train/, valid/ or test/ folders that prepare did not make; choose another --out"
            )
        return
    keys = dict.fromkeys([*settings, "test_pct"])  # test_pct is recorded only when used
    changed = [key for key in keys if saved.get(key) != settings.get(key)]
    older = [what for key, what in (("format", "kind of clip id"), ("split", "train/valid split")) if key in changed]
    if older:
        raise MerError(
            f"{out_dir}: was prepared by an older version of mer-fastai (another {' and '.join(older)}); "
            "pass --overwrite (or a new --out)"
        )
    if changed:
        raise MerError(
            f"{out_dir}: was prepared with other settings ({', '.join(changed)} differ); "
            "pass a new --out or --overwrite"
        )


def remove_own_files(out_dir: Path) -> None:
    """Delete what the data set's records list (its images, `OWN_FILES`) and the folders that leaves empty;
    anything else in `out_dir` stays. Files under train/, valid/ or test/ that prepare did not write would be
    taken for images of the new data set, so they are refused before anything is deleted."""
    images = read_journal(out_dir)[1] | _manifest_images(out_dir)
    foreign = sorted(
        path.relative_to(out_dir).as_posix()
        for split in SPLITS
        for path in (out_dir / split).rglob("*")
        if not path.is_dir() and path.relative_to(out_dir).as_posix() not in images
    )
    if foreign:
        raise MerError(
            f"{out_dir / foreign[0]}: was not written by prepare ({len(foreign)} such file(s) under train/, valid/ "
            f"or test/); move them out of {out_dir}: prepare deletes only the files of its own data set"
        )
    for image in images:
        (out_dir / image).unlink(missing_ok=True)
    for name in OWN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    _remove_empty_folders(out_dir, images)


def _manifest_images(out_dir: Path) -> set[str]:
    """The images `manifest.csv` lists (none where it is missing or unreadable)."""
    try:
        return {row.image for row in read_manifest(out_dir) if own_image(row.image)}
    except MerError:
        return set()


def _remove_empty_folders(out_dir: Path, images: set[str]) -> None:
    """Remove the class folders of `images`, those a clip's writing began in (a write that failed, e.g. on a full
    disk) and the split folders that are empty now."""
    folders = {(out_dir / image).parent for image in images} | {out_dir / split for split in SPLITS}
    folders |= {path for split in SPLITS if (out_dir / split).is_dir() for path in (out_dir / split).iterdir()}
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        with contextlib.suppress(OSError):  # missing, or not empty: kept
            folder.rmdir()


def remove_stale_images(out_dir: Path, stale: set[str]) -> None:
    """Delete images earlier runs wrote that this one no longer lists (a clip relabelled, moved to the other
    side or gone, or left half-made by a killed run), and class folders left empty, so the folders hold exactly
    the manifest's images."""
    for image in stale:
        (out_dir / image).unlink(missing_ok=True)
    for folder in {(out_dir / image).parent for image in stale}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@dataclass
class Change:
    """Takes the data set folder's lock against readers (`_plumbing.locks.excluding_readers`) once, before this
    run first changes the data set: a rerun that changes nothing never waits for a reader."""

    out_dir: Path
    stack: contextlib.ExitStack
    held: bool = False

    def __call__(self) -> None:
        if not self.held:
            self.stack.enter_context(excluding_readers(self.out_dir))
            self.held = True
