"""`prepare`: audio + labels → a class-per-folder mel-spectrogram data set (ImageFolder layout).

A regression data set (`targets`) keeps each clip's target values in the manifest (`target_<name>`) and
files its images under the tertile bin of the first target, which the split is stratified by.

What prepare owns: the output folder must lie outside every folder it reads audio from (and hold none of
them); it deletes or overwrites only what its own records list (the manifest's and journal's images,
dataset.json, manifest.csv, spectrogram.json, the journal). One recording is one clip: names of one file
(links) and byte-identical files are kept once, with a note, or refused when their labels differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

from .._plumbing.files import LOCK_FILE, excluding_readers, output_folder
from .._plumbing.jsonlines import append_entry, open_to_append, read_entries
from .._plumbing.progress import progress_bar
from ..choices import TASKS
from ..data.audio import audio_tree, content_hash, load_audio, same_recordings
from ..data.dataset import (
    DATASET_FILE,
    MANIFEST_FILE,
    SPEC_FILE,
    SPLITS,
    DatasetInfo,
    ManifestRow,
    read_info,
    read_manifest,
    write_info,
    write_manifest,
    write_spec,
)
from ..data.labels import (
    ClipLabel,
    LabelTable,
    label_table,
    match_clips,
    nfc,
    read_moods,
    read_targets,
    unlabeled_error,
)
from ..data.png import save_png
from ..data.spectrogram import SpecConfig, window_images
from ..data.split import SPLIT_METHOD, mood_stratum, split_groups
from ..errors import AudioError, MerError

JOURNAL_FILE = ".progress.jsonl"  # one line per started and per finished clip: what a rerun reuses or removes
OWN_FILES = (DATASET_FILE, MANIFEST_FILE, SPEC_FILE, JOURNAL_FILE)  # besides the images
IMAGE_NAME = re.compile(r"(?P<key>.+)_\d{8}\.png")  # <clip key>_<window start in ms>.png
# Recorded in the settings: a folder made by an older format (clip ids were file stems) is refused.
DATASET_FORMAT = "clip-id-relative-path-1"


@dataclass(frozen=True)
class ClipTask:
    """One clip to turn into spectrogram windows."""

    source: str
    clip_id: str
    key: str
    label: str
    split: str
    targets: dict[str, float] = field(default_factory=dict)  # regression: target → value

    def to_dict(self) -> dict:
        """As prepare's journal records it (a classification task without `targets`, as before)."""
        values = dict(self.__dict__)
        if not self.targets:
            del values["targets"]
        return values


@dataclass
class PrepareResult:
    """What `prepare_dataset` made."""

    out_dir: Path
    classes: list[str]
    clips: int
    segments: int
    counts: dict[str, dict[str, int]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    reused: int = 0
    notes: list[str] = field(default_factory=list)


def _clip_key(file: Path, root: Path) -> str:
    """File-system-safe unique name of a clip, from its path below the audio folder (in NFC)."""
    relative = file.relative_to(root) if file.is_relative_to(root) else Path(file.name)
    return nfc("__".join(relative.with_suffix("").parts).replace(" ", "_"))


def _process_clip(task: ClipTask, out_dir: str, spec_values: dict) -> list[ManifestRow]:
    """Decode one clip, write one PNG per window; return its manifest rows (with the file's content hash)."""
    spec = SpecConfig(**spec_values)
    signal = load_audio(task.source, spec.sample_rate)
    digest = content_hash(task.source)
    folder = Path(out_dir) / task.split / task.label
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for start, picture in window_images(signal, spec):
        image = folder / f"{task.key}_{int(round(start * 1000)):08d}.png"
        save_png(image, picture)
        relative = image.relative_to(out_dir).as_posix()
        row = ManifestRow(task.source, task.clip_id, round(start, 3), task.label, task.split, relative)
        rows.append(replace(row, targets=task.targets, sha256=digest))
    return rows


def _run_clip(task: ClipTask, out_dir: str, spec_values: dict) -> tuple[list[ManifestRow], str | None]:
    """`_process_clip` that reports a bad file instead of raising."""
    try:
        return _process_clip(task, out_dir, spec_values), None
    except AudioError as exc:
        return [], str(exc)


@dataclass(frozen=True)
class Finished:
    """A clip an earlier run finished, as its journal entry says."""

    task: dict
    rows: list[ManifestRow]


def _read_journal(out_dir: Path) -> tuple[dict[str, Finished], set[str]]:
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
    return done, {image for image in written if _own_image(image)}


def _started_images(out_dir: Path, started: dict[str, set[str]]) -> set[str]:
    """The images on disk of the started clips (`<folder>/<key>_<ms>.png`), finished or not."""
    found = set()
    for folder, keys in started.items():
        if not _own_image(f"{folder}/x.png") or not (out_dir / folder).is_dir():
            continue
        for path in (out_dir / folder).iterdir():
            match = IMAGE_NAME.fullmatch(path.name)
            if match and match["key"] in keys:
                found.add(f"{folder}/{path.name}")
    return found


def _own_image(image: str) -> bool:
    """Whether `image` has the form of prepare's images, `<split>/<class>/<name>.png`, inside the data set."""
    parts = image.split("/")
    names_ok = all(part not in ("", ".", "..") and "\\" not in part for part in parts)
    return len(parts) == 3 and parts[0] in SPLITS and names_ok and parts[2].endswith(".png")


def _open_journal(path: Path, settings: dict) -> BinaryIO:
    """The journal, opened to append on a line of its own.

    A new journal starts with the run's settings, so that a rerun with other settings is refused even
    before the first run has finished.
    """
    journal = open_to_append(path)
    if not journal.tell():
        append_entry(journal, {"settings": settings})
    return journal


def _reusable_rows(entry: Finished | None, task: ClipTask, out_dir: Path) -> list[ManifestRow] | None:
    """Rows of a clip finished by an earlier run, if it was made for the same task and its images exist."""
    if entry is None or entry.task != task.to_dict():
        return None
    if not all(row.path(out_dir).exists() for row in entry.rows):
        return None
    return entry.rows


@dataclass
class Plan:
    """The clips to prepare, the files left out (with why) and warnings about the labels or the split."""

    tasks: list[ClipTask]
    skipped: list[dict[str, str]]
    notes: list[str]
    groups: dict[str, str] = field(default_factory=dict)  # clip key → the group the split kept together


def plan_tasks(
    audio_dir: Path,
    table: LabelTable,
    files: list[Path],
    valid_pct: float,
    seed: int,
    skip_unlabeled: bool,
    test_pct: float = 0.0,
) -> Plan:
    """Match files to labels, check the classes and assign each clip to train, validation or test."""
    matched, excluded, unlabeled = match_clips(audio_dir, files, table)
    if unlabeled and not skip_unlabeled:
        raise unlabeled_error(audio_dir, unlabeled, table)
    if not matched:
        raise MerError(f"{audio_dir}: no audio file matches a labelled id in {table.source}; check ids and --feature")
    matched, duplicates = _one_clip_per_recording(audio_dir, matched)
    keys: dict[str, Path] = {}
    for file, _, _ in matched:
        other = keys.setdefault(_clip_key(file, audio_dir), file)
        if other != file:
            raise MerError(
                f"{file}: gives the same spectrogram names as {other} (same name but for extension or spaces); "
                "rename one of them"
            )
    classes = Counter(clip.label for _, _, clip in matched)
    if len(classes) < 2 and table.targets:
        raise MerError(
            f"{table.source}: all {len(matched)} matched clip(s) fall in {next(iter(classes))!r}, what the split is "
            "stratified by (a bin of the first target, or a mood set); add clips with other values"
        )
    if len(classes) < 2:
        raise MerError(
            f"{table.source}: all {len(matched)} matched clip(s) have class {next(iter(classes))!r}; a data set needs "
            "at least two classes: add clips of another class, or check --labels and --feature"
        )
    labels = [_stratum(table, clip) for _, _, clip in matched]
    groups = [clip.group or name for _, name, clip in matched]
    sides = split_groups(labels, groups, valid_pct, seed, test_pct)
    tasks = [
        ClipTask(str(file), name, _clip_key(file, audio_dir), clip.label, side, _targets(table, clip))
        for (file, name, clip), side in zip(matched, sides)
    ]
    skipped = [{"file": str(file), "reason": reason} for file, reason in excluded]
    skipped += [{"file": str(file), "reason": f"no row in {table.source}"} for file in unlabeled]
    sets = table.task == "multilabel"  # each "class" is a mood set: the split is stratified per mood instead
    notes = [*table.notes, *duplicates, *([] if sets else _split_notes(tasks, test_pct > 0))]
    return Plan(tasks, skipped, notes, {task.key: group for task, group in zip(tasks, groups, strict=True)})


Matched = list[tuple[Path, str, ClipLabel]]  # (file, clip id, label), as `labels.match_clips` pairs them


def _one_clip_per_recording(audio_dir: Path, matched: Matched) -> tuple[Matched, list[str]]:
    """Keep one clip of each recording found under several names (links) or as byte-identical files, with a
    note naming the others; refuse copies that are labelled differently. The copy kept is one reached without
    a link if there is one, else the first by path."""
    by_file = {file: (file, name, clip) for file, name, clip in matched}
    dropped: set[Path] = set()
    notes = []
    for group in same_recordings(list(by_file)):
        copies = [by_file[file] for file in group.files]
        kept = min(copies, key=lambda copy: (_through_link(audio_dir, copy[0]), copy[0]))
        how = "the same file as {} (a link)" if group.linked else "byte-identical to {}"
        for file, _, clip in copies:
            if (clip.label, clip.values) != (kept[2].label, kept[2].values):
                raise MerError(
                    f"{file}: is {how.format(kept[0])} but labelled {_shown(clip)}, that one {_shown(kept[2])}; "
                    "one recording takes one label: remove a copy or correct its label"
                )
        others = [name for file, name, _ in copies if file != kept[0]]
        dropped.update(file for file in group.files if file != kept[0])
        verb = "is" if len(others) == 1 else "are"
        notes.append(
            f"note: {', '.join(map(repr, others))} {verb} {how.format(repr(kept[1]))}; kept once, as {kept[1]!r}"
        )
    return [item for item in matched if item[0] not in dropped], notes


def _through_link(audio_dir: Path, file: Path) -> bool:
    """Whether `file` is reached through a link below `audio_dir` (it or a folder on its way)."""
    return Path(os.path.realpath(file)) != audio_dir.resolve() / file.relative_to(audio_dir)


def _shown(clip: ClipLabel) -> str:
    """A clip's label for a message, with its values (regression targets, mood flags) if it has any."""
    values = "" if clip.values is None else f" ({', '.join(f'{value:g}' for value in clip.values)})"
    return f"{clip.label!r}{values}"


def _stratum(table: LabelTable, clip: ClipLabel) -> str | tuple[str, ...]:
    """What the split stratifies a clip by: its class (or bin), or each of its moods ("none" without any)."""
    if table.task != "multilabel":
        return clip.label
    return mood_stratum(table.targets, clip.values or ())


def _targets(table: LabelTable, clip: ClipLabel) -> dict[str, float]:
    """A regression clip's target values by name (empty for classification)."""
    return dict(zip(table.targets, clip.values or (), strict=True)) if table.targets else {}


def _split_notes(tasks: list[ClipTask], tested: bool = False) -> list[str]:
    """Warnings: a class with a single clip, a class that validation (or the test split) does not hold."""
    notes = []
    sides = (("valid", "validation", "--valid-pct"), ("test", "the test split", "--test-pct"))
    for label, count in sorted(Counter(task.label for task in tasks).items()):
        if count == 1:
            notes.append(f"warning: class {label!r} has a single clip; its scores rest on one recording")
            continue
        for split, name, option in sides[: 1 + tested]:
            if not any(task.label == label and task.split == split for task in tasks):
                notes.append(
                    f"warning: class {label!r} has no clip in {name} (its {count} clips or their groups are "
                    f"elsewhere); its {name} scores will be missing: add clips or raise {option}"
                )
    return notes


def _window_notes(rows: list[ManifestRow]) -> list[str]:
    """Warnings: one clip holding more than half of a class's validation windows."""
    windows: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        if row.split == "valid":
            windows[row.label][row.clip_id] += 1
    notes = []
    for label, clips in sorted(windows.items()):
        name, count = clips.most_common(1)[0]
        total = sum(clips.values())
        if len(clips) == 1:
            notes.append(f"warning: class {label!r} is validated on one clip only ({name!r}); its scores rest on it")
        elif count * 2 > total:
            notes.append(
                f"warning: clip {name!r} holds {count} of the {total} validation windows of class {label!r}; "
                "that class's scores rest mostly on one recording"
            )
    return notes


def _saved_settings(out_dir: Path) -> dict | None:
    """The settings `out_dir` was prepared with: from dataset.json, or the journal of an unfinished run."""
    if (out_dir / DATASET_FILE).exists():
        return read_info(out_dir).settings
    try:
        with (out_dir / JOURNAL_FILE).open() as journal:
            return json.loads(journal.readline()).get("settings")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _check_existing(out_dir: Path, settings: dict, overwrite: bool, change: _Change) -> None:
    """Refuse to mix two different preparations in one folder (the caller holds its lock); `overwrite` deletes
    the earlier data set's own files first."""
    if overwrite and ((out_dir / DATASET_FILE).exists() or (out_dir / JOURNAL_FILE).exists()):
        change()
        _remove_own_files(out_dir)
        return
    saved = _saved_settings(out_dir)
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


def _remove_own_files(out_dir: Path) -> None:
    """Delete what the data set's records list (its images, `OWN_FILES`) and the folders that leaves empty;
    anything else in `out_dir` stays. Files under train/, valid/ or test/ that prepare did not write would be
    taken for images of the new data set, so they are refused before anything is deleted."""
    images = _read_journal(out_dir)[1] | _manifest_images(out_dir)
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
        return {row.image for row in read_manifest(out_dir) if _own_image(row.image)}
    except MerError:
        return set()


def _remove_empty_folders(out_dir: Path, images: set[str]) -> None:
    """Remove the class folders of `images` and the split folders that are empty now."""
    folders = {(out_dir / image).parent for image in images} | {out_dir / split for split in SPLITS}
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        with contextlib.suppress(OSError):  # missing, or not empty: kept
            folder.rmdir()


@dataclass
class _Change:
    """Takes the data set folder's lock against readers (`files.excluding_readers`) once, before this run first
    changes the data set: a rerun that changes nothing never waits for a reader."""

    out_dir: Path
    stack: contextlib.ExitStack
    held: bool = False

    def __call__(self) -> None:
        if not self.held:
            self.stack.enter_context(excluding_readers(self.out_dir))
            self.held = True


def prepare_dataset(
    audio_dir: str | Path,
    out_dir: str | Path,
    feature: str | None,
    labels: str | Path | None = None,
    *,
    spec: SpecConfig | None = None,
    valid_pct: float = 0.2,
    test_pct: float = 0.0,
    group_by: str | None = None,
    seed: int = 42,
    id_column: str | None = None,
    label_column: str | None = None,
    cuts: list[float] | None = None,
    skip_unlabeled: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    task: str | None = None,
    targets: list[str] | None = None,
    threshold: float | None = None,
    allow_outliers: bool = False,
) -> PrepareResult:
    """Build the spectrogram data set of one feature; rerunning skips clips already done.

    `test_pct` > 0 holds out a test split (test/, manifest split "test"), chosen before validation, grouped
    and stratified like it (see `split.split_groups`); training never reads it.

    `task` "regression" (implied by `targets`) keeps the numeric columns `targets` of `labels` as the
    clips' values (see `labels.read_targets`); `feature` then defaults to the targets joined by "+".
    `task` "multilabel" keeps each clip's set of moods (1/0 per mood, the manifest's `target_<mood>`
    columns) from `label_column` (`;`-separated) or from the mood columns `targets` with `threshold` (see
    `labels.read_moods`); `feature` defaults to "moods". `allow_outliers` keeps regression targets far outside
    the others (see `labels.read_targets`), which are otherwise refused.

    Audio, labels, matching and classes are checked before anything is written; `out_dir` must lie outside
    the audio folders (see `_check_out`). The output folder is locked while it is written, so a second run into
    it is refused at once, and so is a run that would change a data set a command is reading (`files.reading`).
    """
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    task = check_task(task, targets, feature, labels, label_column, cuts)
    if allow_outliers and task != "regression":
        raise MerError(f"--allow-outliers keeps outlying regression targets; this is a {task} data set: drop it")
    feature = feature or task_feature(task, targets)
    spec = spec or SpecConfig()
    tree = audio_tree(audio_dir)
    _check_out(audio_dir, out_dir, tree.folders)
    files = tree.files
    if task == "multilabel":
        table = read_moods(labels, targets=targets, label_column=label_column, id_column=id_column,
                           threshold=threshold, group_by=group_by, skip_unlabeled=skip_unlabeled)  # fmt: skip
    elif task == "regression":
        table = read_targets(labels, targets, id_column=id_column, group_by=group_by,  # type: ignore[arg-type]
                             skip_unlabeled=skip_unlabeled, allow_outliers=allow_outliers)  # fmt: skip
    else:
        table = label_table(
            audio_dir,
            files,
            labels,
            feature,
            group_by=group_by,
            id_column=id_column,
            label_column=label_column,
            cuts=cuts,
            skip_unlabeled=skip_unlabeled,
        )
    plan = plan_tasks(audio_dir, table, files, valid_pct, seed, skip_unlabeled, test_pct)
    settings = {
        "format": DATASET_FORMAT,
        "feature": feature,
        "labels": str(Path(labels).resolve()) if labels else None,
        "valid_pct": valid_pct,
        "group_by": group_by,
        "seed": seed,
        "split": SPLIT_METHOD,
        "cuts": table.cuts,
        "spectrogram": spec.digest(),
        **({"test_pct": test_pct} if test_pct else {}),  # only when used: older data sets stay reusable
        **({"task": task, "targets": table.targets} if task != "classification" else {}),
        **({"threshold": threshold} if threshold is not None else {}),
    }
    with output_folder(out_dir, "--out"), contextlib.ExitStack() as stack:
        change = _Change(out_dir, stack)
        _check_existing(out_dir, settings, overwrite, change)
        fresh = all(entry.name == LOCK_FILE for entry in out_dir.iterdir())
        try:
            return _write_dataset(audio_dir, out_dir, feature, spec, settings, plan, table, workers, progress, change)
        except MerError:
            if fresh:  # nothing came of it (e.g. no file could be decoded): leave no half-made folder
                _remove_own_files(out_dir)
            raise


def _check_out(audio_dir: Path, out_dir: Path, folders: list[Path]) -> None:
    """Refuse an `out_dir` that is one of the (resolved) folders prepare reads audio from, holds one, or lies in
    one: the data set goes into a folder of its own, and the user's audio folders are never written."""
    out = out_dir.resolve()
    for folder in folders:
        if out == folder or folder.is_relative_to(out):
            what = "is the audio folder" if out == folder else f"holds the audio folder {folder}"
            raise MerError(
                f"{out_dir}: {what}; prepare writes a data set only into a folder of its own: choose an --out "
                f"outside {audio_dir}"
            )
        if out.is_relative_to(folder):
            raise MerError(
                f"{out_dir}: lies inside the audio folder {folder}, which prepare reads; choose an --out outside "
                f"{audio_dir}"
            )


def task_feature(task: str, targets: list[str] | None) -> str:
    """The name a regression or multilabel data set goes by without `feature`: its targets joined by "+"
    (`valence+energy`), or "moods"."""
    return "moods" if task == "multilabel" else "+".join(targets or [])


def check_task(
    task: str | None,
    targets: list[str] | None,
    feature: str | None,
    labels: str | Path | None,
    label_column: str | None,
    cuts: list[float] | None,
) -> str:
    """The data set's task (`--target` implies regression), its options checked together."""
    task = task or ("regression" if targets else "classification")
    if task not in TASKS:
        raise MerError(f"unknown --task {task!r}; choose {' or '.join(TASKS)}")
    if task == "classification":
        if targets:
            raise MerError("--target gives a regression data set; drop --task classification, or --target")
        if not feature:
            raise MerError("--feature is missing; name the feature to classify (or pass --target for regression)")
        return task
    if labels is None:
        raise MerError(f"--task {task} needs a --labels file that holds its columns")
    if cuts:
        raise MerError(f"--cuts bins ratings into classes; a {task} data set keeps its values: drop --cuts")
    if task == "multilabel":
        return task
    if not targets:
        raise MerError("--task regression needs the numeric column(s) to learn: pass --target COL (repeatable)")
    if label_column:
        raise MerError("--label-column names classes; with --target drop it")
    return task


def _write_dataset(
    audio_dir: Path,
    out_dir: Path,
    feature: str,
    spec: SpecConfig,
    settings: dict,
    plan: Plan,
    table: LabelTable,
    workers: int | None,
    progress: bool,
    change: _Change,
) -> PrepareResult:
    """Make the images still missing (reusing what earlier runs finished), then the manifest and dataset.json."""
    tasks = plan.tasks
    rows_by_key: dict[str, list[ManifestRow]] = {}
    todo = []
    finished, written = _read_journal(out_dir)
    for task in tasks:
        done = _reusable_rows(finished.get(task.key), task, out_dir)
        if done is None:
            todo.append(task)
        else:
            rows_by_key[task.key] = done
    reused = len(rows_by_key)
    if todo or written - {row.image for rows in rows_by_key.values() for row in rows}:
        change()  # images will be made or deleted
    write_spec(out_dir, spec)
    if todo:  # the folder is being changed: until it is complete again it is no usable data set
        for name in (DATASET_FILE, MANIFEST_FILE):
            (out_dir / name).unlink(missing_ok=True)
        for task in todo:  # a redone clip may change side or class: never leave it in both
            for row in finished[task.key].rows if task.key in finished else []:
                if _own_image(row.image):
                    row.path(out_dir).unlink(missing_ok=True)
    with _open_journal(out_dir / JOURNAL_FILE, settings) as journal:
        _hash_reused(tasks, rows_by_key, journal)
        failed = _run_tasks(todo, out_dir, spec, workers, progress, rows_by_key, journal)
    skipped = plan.skipped + failed

    rows = [replace(row, group=plan.groups[task.key]) for task in tasks for row in rows_by_key.get(task.key, [])]
    if not rows:
        first = failed[0]["reason"] if failed else "no windows"
        raise MerError(f"{audio_dir}: none of the {len(tasks)} labelled files could be decoded (first: {first})")
    write_manifest(out_dir, rows)
    _remove_stale_images(out_dir, written - {row.image for row in rows})
    counts: dict[str, dict[str, int]] = {"train": {}, "valid": {}, **({"test": {}} if settings.get("test_pct") else {})}
    for (split, label), n in sorted(Counter((row.split, row.label) for row in rows).items()):
        counts[split][label] = n
    info = DatasetInfo(
        feature=feature,
        classes=sorted({row.label for row in rows}),
        audio_dir=str(audio_dir.resolve()),
        clips=len(rows_by_key),
        segments=len(rows),
        counts=counts,
        excluded_by_feature=len(table.excluded),
        skipped=skipped,
        notes=[*plan.notes, *([] if settings.get("task") == "multilabel" else _window_notes(rows))],
        settings=settings,
        task=settings.get("task", "classification"),
        targets=table.targets,
        scale=table.scale,
    )
    write_info(out_dir, info)
    return PrepareResult(out_dir, info.classes, info.clips, info.segments, counts, skipped, reused, info.notes)


def _hash_reused(tasks: list[ClipTask], rows_by_key: dict[str, list[ManifestRow]], journal: BinaryIO) -> None:
    """Give the reused rows of clips an older version finished (no content hash yet) their file's hash, and
    journal them so that the next run reuses it."""
    for task in tasks:
        rows = rows_by_key.get(task.key)
        if not rows or rows[0].sha256:
            continue
        try:
            digest = content_hash(task.source)
        except AudioError:
            continue
        rows_by_key[task.key] = [replace(row, sha256=digest) for row in rows]
        append_entry(journal, {"task": task.to_dict(), "rows": [row.to_dict() for row in rows_by_key[task.key]]})


def _run_tasks(
    tasks: list[ClipTask],
    out_dir: Path,
    spec: SpecConfig,
    workers: int | None,
    progress: bool,
    rows_by_key: dict[str, list[ManifestRow]],
    journal: BinaryIO,
) -> list[dict[str, str]]:
    """Process clips in parallel with a progress bar, journalling each one as it starts (where its images may
    lie) and when it has finished; return the failed files."""
    skipped: list[dict[str, str]] = []

    def start(task: ClipTask) -> ClipTask:
        append_entry(journal, {"started": {"folder": f"{task.split}/{task.label}", "key": task.key}})
        return task

    def collect(task: ClipTask, outcome: tuple[list[ManifestRow], str | None]) -> None:
        rows, error = outcome
        if error:
            skipped.append({"file": task.source, "reason": error})
            return
        rows_by_key[task.key] = rows
        append_entry(journal, {"task": task.to_dict(), "rows": [row.to_dict() for row in rows]})  # reusable now

    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    with progress_bar("spectrograms", total=len(tasks), enabled=progress) as advance:
        if workers == 1:
            for task in tasks:
                collect(start(task), _run_clip(task, str(out_dir), spec.to_dict()))
                advance()
            return skipped
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            pending: dict[Future, ClipTask] = {}
            queue = iter(tasks)
            while True:
                for task in queue:
                    pending[pool.submit(_run_clip, start(task), str(out_dir), spec.to_dict())] = task
                    if len(pending) >= workers * 4:
                        break
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    collect(pending.pop(future), future.result())
                    advance()
    return skipped


def _remove_stale_images(out_dir: Path, stale: set[str]) -> None:
    """Delete images earlier runs wrote that this one no longer lists (a clip relabelled, moved to the other
    side or gone, or left half-made by a killed run), and class folders left empty, so the folders hold exactly
    the manifest's images."""
    for image in stale:
        (out_dir / image).unlink(missing_ok=True)
    for folder in {(out_dir / image).parent for image in stale}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
