"""`prepare`: audio + labels → a class-per-folder mel-spectrogram data set (ImageFolder layout).

A regression data set (`targets`) keeps each clip's target values in the manifest (`target_<name>`) and
files its images under the tertile bin of the first target, which the split is stratified by.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

from .audio import audio_files, load_audio, windows
from .choices import TASKS
from .dataset import (
    DATASET_FILE,
    MANIFEST_FILE,
    SPLITS,
    DatasetInfo,
    ManifestRow,
    read_info,
    write_info,
    write_manifest,
    write_spec,
)
from .errors import AudioError, MerError
from .files import LOCK_FILE, output_folder
from .jsonlines import append_entry, open_to_append, read_entries
from .labels import ClipLabel, LabelTable, label_table, match_clips, read_moods, read_targets, unlabeled_error
from .png import save_png
from .progress import progress_bar
from .spectrogram import SpecConfig, mel_image
from .split import SPLIT_METHOD, mood_stratum, split_groups

JOURNAL_FILE = ".progress.jsonl"  # one line per finished clip: what a rerun reuses
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
    """File-system-safe unique name of a clip, from its path below the audio folder."""
    relative = file.relative_to(root) if file.is_relative_to(root) else Path(file.name)
    return "__".join(relative.with_suffix("").parts).replace(" ", "_")


def _process_clip(task: ClipTask, out_dir: str, spec_values: dict) -> list[ManifestRow]:
    """Decode one clip, write one PNG per window; return its manifest rows."""
    spec = SpecConfig(**spec_values)
    signal = load_audio(task.source, spec.sample_rate)
    folder = Path(out_dir) / task.split / task.label
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for start, window in windows(signal, spec.sample_rate, spec.segment_seconds, spec.hop_seconds):
        image = folder / f"{task.key}_{int(round(start * 1000)):08d}.png"
        save_png(image, mel_image(window, spec))
        relative = image.relative_to(out_dir).as_posix()
        row = ManifestRow(task.source, task.clip_id, round(start, 3), task.label, task.split, relative)
        rows.append(replace(row, targets=task.targets))
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
    is ignored), and every image the journal says was written."""
    done: dict[str, Finished] = {}
    written: set[str] = set()
    for entry in read_entries(out_dir / JOURNAL_FILE):
        try:
            finished = Finished(entry["task"], [ManifestRow.from_dict(row) for row in entry["rows"]])
            done[entry["task"]["key"]] = finished
        except (KeyError, TypeError, ValueError):
            continue
        written.update(row.image for row in finished.rows)
    return done, written


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
    notes = [*table.notes, *([] if sets else _split_notes(tasks, test_pct > 0))]
    return Plan(tasks, skipped, notes, {task.key: group for task, group in zip(tasks, groups, strict=True)})


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


def _check_existing(out_dir: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to mix two different preparations in one folder (the caller holds its lock)."""
    if overwrite and ((out_dir / DATASET_FILE).exists() or (out_dir / JOURNAL_FILE).exists()):
        _clear(out_dir)
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


def _clear(out_dir: Path) -> None:
    """Delete everything in `out_dir` but its lock file (held by this run)."""
    for entry in out_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


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
) -> PrepareResult:
    """Build the spectrogram data set of one feature; rerunning skips clips already done.

    `test_pct` > 0 holds out a test split (test/, manifest split "test"), chosen before validation, grouped
    and stratified like it (see `split.split_groups`); training never reads it.

    `task` "regression" (implied by `targets`) keeps the numeric columns `targets` of `labels` as the
    clips' values (see `labels.read_targets`); `feature` then defaults to the targets joined by "+".
    `task` "multilabel" keeps each clip's set of moods (1/0 per mood, the manifest's `target_<mood>`
    columns) from `label_column` (`;`-separated) or from the mood columns `targets` with `threshold` (see
    `labels.read_moods`); `feature` defaults to "moods".

    Audio, labels, matching and classes are checked before anything is written; the output folder is
    locked while it is written, so a second run into it is refused at once.
    """
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    task = check_task(task, targets, feature, labels, label_column, cuts)
    feature = feature or task_feature(task, targets)
    spec = spec or SpecConfig()
    files = audio_files(audio_dir)
    if task == "multilabel":
        table = read_moods(labels, targets=targets, label_column=label_column, id_column=id_column,
                           threshold=threshold, group_by=group_by, skip_unlabeled=skip_unlabeled)  # fmt: skip
    elif task == "regression":
        table = read_targets(labels, targets, id_column=id_column, group_by=group_by, skip_unlabeled=skip_unlabeled)  # type: ignore[arg-type]
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
    with output_folder(out_dir, "--out"):
        _check_existing(out_dir, settings, overwrite)
        fresh = all(entry.name == LOCK_FILE for entry in out_dir.iterdir())
        try:
            return _write_dataset(audio_dir, out_dir, feature, spec, settings, plan, table, workers, progress)
        except MerError:
            if fresh:  # nothing came of it (e.g. no file could be decoded): leave no half-made folder
                _clear(out_dir)
            raise


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
) -> PrepareResult:
    """Make the images still missing (reusing what earlier runs finished), then the manifest and dataset.json."""
    tasks = plan.tasks
    write_spec(out_dir, spec)
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
    if todo:  # the folder is being changed: until it is complete again it is no usable data set
        for name in (DATASET_FILE, MANIFEST_FILE):
            (out_dir / name).unlink(missing_ok=True)
        for task in todo:  # a redone clip may change side or class: never leave it in both
            for row in finished[task.key].rows if task.key in finished else []:
                row.path(out_dir).unlink(missing_ok=True)
    with _open_journal(out_dir / JOURNAL_FILE, settings) as journal:
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


def _run_tasks(
    tasks: list[ClipTask],
    out_dir: Path,
    spec: SpecConfig,
    workers: int | None,
    progress: bool,
    rows_by_key: dict[str, list[ManifestRow]],
    journal: BinaryIO,
) -> list[dict[str, str]]:
    """Process clips in parallel with a progress bar, journalling each finished one; return the failed files."""
    skipped: list[dict[str, str]] = []

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
                collect(task, _run_clip(task, str(out_dir), spec.to_dict()))
                advance()
            return skipped
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            pending: dict[Future, ClipTask] = {}
            queue = iter(tasks)
            while True:
                for task in queue:
                    pending[pool.submit(_run_clip, task, str(out_dir), spec.to_dict())] = task
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
    side or gone), and class folders left empty, so the folders hold exactly the manifest's images."""
    for image in stale:
        (out_dir / image).unlink(missing_ok=True)
    for folder in {(out_dir / image).parent for image in stale}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
