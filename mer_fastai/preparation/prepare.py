"""`prepare`: audio + labels → a class-per-folder mel-spectrogram data set (ImageFolder layout).

A regression data set (`targets`) keeps each clip's target values in the manifest (`target_<name>`) and
files its images under the tertile bin of the first target, which the split is stratified by.

What prepare owns: the output folder must lie outside every folder it reads audio from (and hold none of
them); it deletes or overwrites only what its own records list (see `journal`). One recording is one clip:
names of one file (links) and byte-identical files are kept once, with a note, or refused when their labels
differ (see `clips`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .._plumbing.files import is_within, output_folder
from .._plumbing.locks import LOCK_FILE
from .._plumbing.workers import WORKERS
from ..bounds import quote
from ..data.audio import audio_tree
from ..data.dataset import (
    DATASET_FILE,
    MANIFEST_FILE,
    SPLITS,
    DatasetInfo,
    ManifestRow,
    write_info,
    write_manifest,
    write_spec,
)
from ..data.labelfiles import LabelTable
from ..data.labelsource import LabelSource, label_source
from ..data.spectrogram import SpecConfig
from ..data.split import SPLIT_METHOD
from ..errors import MerError
from ..runs.inputs import same_path
from ..tasks.base import Task
from ..tasks.registry import TASKS, get_task, implied_task
from .clips import ClipJob, Plan, plan_clips, window_notes
from .journal import (
    JOURNAL_FILE,
    OWN_FILES,
    Change,
    check_existing,
    open_journal,
    own_image,
    read_journal,
    remove_own_files,
    remove_stale_images,
    reusable_rows,
)
from .writing import hash_reused, move_clips, write_clips

__all__ = ["prepare_dataset", "PrepareResult"]

# Recorded in the settings: a folder made by an older format (clip ids were file stems) is refused.
DATASET_FORMAT = "clip-id-relative-path-1"


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


def prepare_dataset(
    audio_dir: str | Path,
    out_dir: str | Path,
    feature: str | None,
    labels: str | Path | LabelSource | None = None,
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

    `labels` is the labels file, read as the label keywords (`group_by` ... `allow_outliers`) say, or a whole
    `LabelSource` (then those keywords stay unset). `test_pct` > 0 holds out a test split (test/, manifest split
    "test"), chosen before validation, grouped and stratified like it (see `data.split.split_groups`); training
    never reads it.

    `task` "regression" (implied by `targets`) keeps the numeric columns `targets` of `labels` as the
    clips' values (see `data.targets.read_targets`); `feature` then defaults to the targets joined by "+".
    `task` "multilabel" keeps each clip's set of moods (1/0 per mood, the manifest's `target_<mood>`
    columns) from `label_column` (`;`-separated) or from the mood columns `targets` with `threshold` (see
    `data.targets.read_moods`); `feature` defaults to "moods". `allow_outliers` keeps regression targets far outside
    the others (see `data.targets.read_targets`), which are otherwise refused.

    Audio, labels, matching and classes are checked before anything is written; `out_dir` must lie outside
    the audio folders (see `_check_out`). The output folder is locked while it is written, so a second run into
    it is refused at once, and so is a run that would change a data set a command is reading
    (`_plumbing.locks.reading`).
    """
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    source = label_source(
        "prepare_dataset", labels, group_by=group_by, id_column=id_column, label_column=label_column, cuts=cuts,
        skip_unlabeled=skip_unlabeled, targets=targets, threshold=threshold, allow_outliers=allow_outliers,
    )  # fmt: skip
    WORKERS.check(workers, "--workers")
    kind = check_labels(task, feature, source)
    feature = feature or kind.default_feature(source.targets)
    spec = spec or SpecConfig()
    tree = audio_tree(audio_dir)
    _check_out(audio_dir, out_dir, tree.folders)
    _check_labels_out(source.labels, out_dir)
    files = tree.files
    table = kind.read_labels(source, feature, audio_dir, files)

    def replan(prints: dict[str, str]) -> Plan:
        plan = plan_clips(audio_dir, kind, table, files, valid_pct, seed, source.skip_unlabeled, test_pct, prints)
        plan.skipped[:0] = [{"file": str(path), "reason": why} for path, why in tree.skipped]  # never opened
        return plan

    plan = replan(known_prints(out_dir))
    settings = {
        "format": DATASET_FORMAT,
        "feature": feature,
        "labels": str(Path(source.labels).resolve()) if source.labels else None,
        "valid_pct": valid_pct,
        "group_by": source.group_by,
        "seed": seed,
        "split": SPLIT_METHOD,
        "cuts": table.cuts,
        "spectrogram": spec.digest(),
        **({"test_pct": test_pct} if test_pct else {}),  # only when used: older data sets stay reusable
        **({} if kind.is_default else {"task": str(kind), "targets": table.targets}),
        **({"threshold": source.threshold} if source.threshold is not None else {}),
    }
    with output_folder(out_dir, "--out"), contextlib.ExitStack() as stack:
        change = Change(out_dir, stack)
        check_existing(out_dir, settings, overwrite, change)
        fresh = all(entry.name == LOCK_FILE for entry in out_dir.iterdir())
        made = Made(audio_dir, out_dir, feature, kind, spec, settings)
        try:
            return _write_dataset(made, plan, table, workers, progress, change, replan)
        except MerError:
            if fresh:  # nothing came of it (e.g. no file could be decoded): leave no half-made folder
                remove_own_files(out_dir)
            raise


def known_prints(out_dir: Path) -> dict[str, str]:
    """The fingerprints of the clips earlier runs into `out_dir` finished, by clip key (none for a new folder)."""
    finished, _ = read_journal(out_dir) if (out_dir / JOURNAL_FILE).is_file() else ({}, set())
    return {
        key: entry.rows[0].fingerprint for key, entry in finished.items() if entry.rows and entry.rows[0].fingerprint
    }


def _regrouped(
    plan: Plan,
    replan: Callable[[dict[str, str]], Plan],
    rows_by_key: dict[str, list[ManifestRow]],
    change: Change,
    move: Callable[[list[ClipJob]], None],
) -> Plan:
    """The plan with every finished clip's fingerprint; the clips it puts on another side are moved there."""
    prints = {key: rows[0].fingerprint for key, rows in rows_by_key.items() if rows and rows[0].fingerprint}
    again = replan(prints)
    before = {job.key: job for job in plan.jobs}
    moves = [job for job in again.jobs if job.key in rows_by_key and job != before[job.key]]
    if moves:
        change()
        move(moves)
    return again


def _check_labels_out(labels: str | Path | None, out_dir: Path) -> None:
    """Refuse a labels file that is one of the files prepare writes in `out_dir` (its records, or anything under
    train/, valid/ or test/): a rerun would replace what it reads."""
    if labels is None:
        return
    own = [out_dir / name for name in OWN_FILES] + [out_dir / split for split in SPLITS]
    if any(same_path(labels, path) or is_within(labels, path) for path in own):
        raise MerError(
            f"--labels {labels}: is a file prepare writes in --out {out_dir}; copy the labels file out of the data "
            "set folder and pass the copy"
        )


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


def check_labels(task: str | None, feature: str | None, source: LabelSource) -> Task:
    """The data set's task (`--target` implies regression), the label options checked together with it."""
    if task and task not in TASKS:
        raise MerError(f"unknown --task {quote(task)}; choose {' or '.join(TASKS)}")
    kind = get_task(task) if task else implied_task(bool(source.targets))
    source.check(kind)
    source.needs(kind)
    if not feature and not kind.facts.takes_targets:
        raise MerError("--feature is missing; name the feature to classify (or pass --target for regression)")
    return kind


@dataclass(frozen=True)
class Made:
    """What one `prepare_dataset` call makes: from which audio, into which folder, of which feature and task,
    in which spectrogram, with the settings a rerun must match."""

    audio_dir: Path
    out_dir: Path
    feature: str
    task: Task
    spec: SpecConfig
    settings: dict


def _write_dataset(
    made: Made,
    plan: Plan,
    table: LabelTable,
    workers: int | None,
    progress: bool,
    change: Change,
    replan: Callable[[dict[str, str]], Plan],
) -> PrepareResult:
    """Make the images still missing (reusing what earlier runs finished), then the manifest and dataset.json.

    The fingerprints of the clips made here may show recordings that sound alike on different sides: the clips
    are then planned again with every fingerprint (`replan`), and those whose side changed are moved there."""
    out_dir, clips = made.out_dir, plan.jobs
    rows_by_key: dict[str, list[ManifestRow]] = {}
    todo = []
    finished, written = read_journal(out_dir)
    for clip in clips:
        done = reusable_rows(finished.get(clip.key), clip, out_dir)
        if done is None:
            todo.append(clip)
        else:
            rows_by_key[clip.key] = done
    reused = len(rows_by_key)
    if todo or written - {row.image for rows in rows_by_key.values() for row in rows}:
        change()  # images will be made or deleted
    write_spec(out_dir, made.spec)
    if todo:  # the folder is being changed: until it is complete again it is no usable data set
        for name in (DATASET_FILE, MANIFEST_FILE):
            (out_dir / name).unlink(missing_ok=True)
        for clip in todo:  # a redone clip may change side or class: never leave it in both
            for row in finished[clip.key].rows if clip.key in finished else []:
                if own_image(row.image):
                    row.path(out_dir).unlink(missing_ok=True)
    with open_journal(out_dir / JOURNAL_FILE, made.settings) as journal:
        hash_reused(clips, rows_by_key, journal)
        failed = write_clips(todo, out_dir, made.spec, workers, progress, rows_by_key, journal)
        if todo:
            plan = _regrouped(
                plan, replan, rows_by_key, change, lambda moves: move_clips(moves, out_dir, rows_by_key, journal)
            )
            clips = plan.jobs
    skipped = plan.skipped + failed

    rows = [replace(row, group=plan.groups[clip.key]) for clip in clips for row in rows_by_key.get(clip.key, [])]
    if not rows:
        first = failed[0]["reason"] if failed else "no windows"
        raise MerError(f"{made.audio_dir}: none of the {len(clips)} labelled files could be decoded (first: {first})")
    write_manifest(out_dir, rows)
    remove_stale_images(out_dir, written - {row.image for row in rows})
    tested = made.settings.get("test_pct")
    counts: dict[str, dict[str, int]] = {"train": {}, "valid": {}, **({"test": {}} if tested else {})}
    for (split, label), n in sorted(Counter((row.split, row.label) for row in rows).items()):
        counts[split][label] = n
    info = DatasetInfo(
        feature=made.feature,
        classes=sorted({row.label for row in rows}),
        audio_dir=str(made.audio_dir.resolve()),
        clips=len(rows_by_key),
        segments=len(rows),
        counts=counts,
        excluded_by_feature=len(table.excluded),
        skipped=skipped,
        notes=[*plan.notes, *([] if made.task.facts.labels_are_sets else window_notes(rows))],
        settings=made.settings,
        task=str(made.task),
        targets=table.targets,
        scale=table.scale,
    )
    write_info(out_dir, info)
    return PrepareResult(out_dir, info.classes, info.clips, info.segments, counts, skipped, reused, info.notes)
