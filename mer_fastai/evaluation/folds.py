"""The folds of a cross-validation: clips dealt into K grouped, stratified folds (R times), and each fold's data set.

The clips (the test split, if any, stays out) are dealt into K folds, grouped (a split group — e.g. an artist —
never lies on two sides) and stratified as prepare's split is: by class, by the first target's bin
(regression) or per mood (multilabel). A fold's data set is the original images hard-linked into a folder of
its own, fold `k` validating and the others training. `cv` trains on these folds and `baseline --folds` scores
on them: the same folds at the same seed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..bounds import quote
from ..data.dataset import REMAKE, TRAINING_SPLITS, DatasetInfo, ManifestRow
from ..data.split import NO_MOOD, Labels, group_counts, mood_stratum, strata
from ..errors import MerError
from ..runs.layout import FOLDS_DIR
from ..tasks.opened import Dataset, write_dataset

CV_SPLITS = TRAINING_SPLITS  # the clips cross-validated; a held-out test split stays out


@dataclass(frozen=True)
class Fold:
    """One training of the cross-validation: which repeat, which fold, which clips validate."""

    index: int  # position over all repeats; also the run folder's name
    repeat: int
    fold: int
    valid_clips: frozenset[str]

    @property
    def name(self) -> str:
        return str(self.index)


def k_fold_groups(labels: Labels, groups: list[str], k: int, seed: int) -> list[int]:
    """The fold (0..k-1) of each clip: clips of one group share a fold; each fold gets ~1/k of every class
    (a clip labelled with a tuple of moods counts toward each, as in `data.split.split_groups`).

    Groups are placed largest first (ties in a seeded order that depends on each group's name only), each
    into the fold where it brings the classes' shares closest to 1/k (least squares, as `split_groups`);
    every fold receives at least one group.
    """
    names = sorted(set(groups))
    if k < 2:
        raise MerError(f"--folds must be at least 2 (got {k})")
    if len(names) < k:
        raise MerError(f"--folds {k}: the data set has only {len(names)} clips or groups to deal out; lower --folds")
    classes, counts, totals = group_counts(labels, groups)
    order = sorted(names, key=lambda n: (-counts[n].sum(), hashlib.sha1(f"{seed}:{n}".encode()).hexdigest()))
    folds = np.zeros((k, len(classes)))
    fold_of: dict[str, int] = {}
    for placed, name in enumerate(order):
        empty = [f for f in range(k) if not folds[f].any()]
        candidates = empty if len(empty) >= len(order) - placed else range(k)

        def cost(f: int, name: str = name) -> tuple[float, float, int]:
            error = np.sum(((folds[f] + counts[name]) / totals - 1 / k) ** 2) - np.sum((folds[f] / totals - 1 / k) ** 2)
            return float(error), float(folds[f].sum()), f

        best = min(candidates, key=cost)
        fold_of[name] = best
        folds[best] += counts[name]
    return [fold_of[group] for group in groups]


def clip_groups(data_dir: Path, info: DatasetInfo, rows: list[ManifestRow]) -> tuple[dict[str, str], str]:
    """The split group of every clip and where it came from ("manifest", "labels file" or "clips").

    Without `--group-by` every clip is its own group (as in prepare). With it, the groups come from the
    manifest's `group` column, else are read back from the labels file `dataset.json` records.
    """
    recorded = {row.clip_id: row.group for row in rows}
    if any(recorded.values()):
        return {clip: group or clip for clip, group in recorded.items()}, "manifest"
    group_by = info.settings.get("group_by")
    if not group_by:
        return {clip: clip for clip in recorded}, "clips"
    return _groups_from_labels(data_dir, info, rows, group_by), "labels file"


def _groups_from_labels(data_dir: Path, info: DatasetInfo, rows: list[ManifestRow], group_by: str) -> dict[str, str]:
    from ..data.labels import label_table
    from ..data.matching import match_clips

    labels = info.settings.get("labels")
    files = sorted({Path(row.source) for row in rows})
    try:
        audio_dir = Path(info.audio_dir or "")
        table = label_table(
            audio_dir, files, labels, info.feature, group_by=group_by, cuts=info.settings.get("cuts"),
            skip_unlabeled=True,
        )  # fmt: skip
        matched, _, _ = match_clips(audio_dir, files, table)
    except (MerError, OSError, ValueError) as exc:
        raise MerError(
            f"{data_dir}: was prepared with --group-by {group_by}, but its manifest does not record the groups and "
            f"they cannot be read back from {labels} ({exc}); prepare it again with this version of mer-fastai"
        ) from exc
    groups = {name: clip.group or name for _, name, clip in matched}
    lost = sorted({row.clip_id for row in rows} - set(groups))
    if lost:
        raise MerError(
            f"{data_dir}: the groups of {len(lost)} clip(s) (e.g. {lost[0]}) cannot be read back from {labels}; "
            "prepare the data set again with this version of mer-fastai"
        )
    return groups


Clips = dict[str, tuple[str | tuple[str, ...], str]]  # clip id → (what it is stratified by, its group)


def clip_strata(dataset: Dataset, row: ManifestRow) -> str | tuple[str, ...]:
    """What a clip's fold is stratified by, as prepare's split: its class (a regression's: the first target's
    bin, its folder), or each of its moods."""
    return mood_stratum(dataset.info.targets, row.values) if dataset.task.facts.labels_are_sets else row.label


def plan_folds(clips: Clips, folds: int, repeats: int, seed: int, learned: str | None = "class") -> list[Fold]:
    """The K·R trainings: for repeat r the clips (id → (label, group)) are dealt with seed `seed + r`.

    `learned` ("class", "mood", or None for a regression) is what every fold's training must hold each of."""
    if repeats < 1:
        raise MerError(f"--repeats must be at least 1 (got {repeats})")
    ids = sorted(clips)
    labels = [clips[clip][0] for clip in ids]
    groups = [clips[clip][1] for clip in ids]
    plan = []
    for repeat in range(repeats):
        assigned = k_fold_groups(labels, groups, folds, seed + repeat)
        for fold in range(folds):
            valid = frozenset(clip for clip, f in zip(ids, assigned, strict=True) if f == fold)
            plan.append(Fold(len(plan), repeat, fold, valid))
    if learned:
        _check_training_classes(clips, plan, learned)
    return plan


def _check_training_classes(clips: Clips, plan: list[Fold], what: str) -> None:
    """Every class (mood) must keep training clips in every fold (one group holding a whole class cannot be
    validated); clips without any mood are no mood to learn."""
    unlearned = {NO_MOOD} if what == "mood" else set()
    everything = {name for label, _ in clips.values() for name in strata(label)} - unlearned
    for fold in plan:
        trained = {name for clip, (label, _) in clips.items() if clip not in fold.valid_clips for name in strata(label)}
        missing = sorted(everything - trained)
        if missing:
            raise MerError(
                f"fold {fold.name}: {what} {quote(missing[0])} has all its clips in this "
                "fold's validation (its clips share "
                "one group), so no model could learn it; add clips of other groups, or prepare without --group-by"
            )


def build_fold_data(dataset: Dataset, rows: list[ManifestRow], fold: Fold, dest: Path) -> Dataset:
    """A data set folder for one fold: the images linked in, its manifest, dataset.json and spectrogram.json."""
    splits = ["valid" if row.clip_id in fold.valid_clips else "train" for row in rows]
    cv = {"repeat": fold.repeat, "fold": fold.fold, "valid_clips": len(fold.valid_clips)}
    return linked_data(dataset, list(zip(rows, splits, strict=True)), dest, {**dataset.info.settings, "cv": cv})


def linked_data(dataset: Dataset, placed: list[tuple[ManifestRow, str]], dest: Path, settings: dict) -> Dataset:
    """A data set folder of `dataset`'s images, each row in the split given beside it (images hard-linked), with
    its manifest, dataset.json (with `settings`) and spectrogram.json; the record of it."""
    data_dir, info = dataset.path, dataset.info
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    fold_rows = []
    for row, split in placed:
        image = f"{split}/{row.label}/{Path(row.image).name}"
        target = dest / image
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise MerError(f"{data_dir}: two images are named {Path(row.image).name} in class {row.label}; {REMAKE}")
        _link(row.path(data_dir), target)
        fold_rows.append(replace(row, split=split, image=image))
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in fold_rows:
        counts[row.split][row.label] += 1
    return write_dataset(
        dest,
        dataset,
        replace(
            info,
            clips=len({row.clip_id for row in fold_rows}),
            segments=len(fold_rows),
            counts={split: dict(counts[split]) for split in (*CV_SPLITS, *(["test"] if counts["test"] else []))},
            notes=[],
            settings=settings,
            subset_of=str(data_dir),
        ),
        fold_rows,
    )


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy, no space), else a symbolic link (another file system)."""
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())


def dataset_folds(dataset: Dataset, folds: int, repeats: int, seed: int) -> tuple[list[ManifestRow], list[Fold], str]:
    """The rows of the checked data set cross-validated (train and valid: a test split stays out), the
    K·R folds dealt with `seed` and where the groups came from: the folds `run_cv` trains and
    `cross_validate_baseline` scores, the same for both at the same seed."""
    from ..training.items import check_dataset

    rows = [row for row in check_dataset(dataset).rows if row.split in CV_SPLITS]
    groups, group_source = clip_groups(dataset.path, dataset.info, rows)
    clips = {row.clip_id: (clip_strata(dataset, row), groups[row.clip_id]) for row in rows}
    return rows, plan_folds(clips, folds, repeats, seed, dataset.task.facts.learned), group_source


def refuse_other_folds(out: Path, plan: list[Fold], dealt_otherwise: Callable[[Path], bool] = lambda _: False) -> None:
    """Refuse an output folder holding the folds of another cross-validation (another --folds/--repeats): an entry
    of its folds folder that `plan` does not deal, or a fold `dealt_otherwise` says another one wrote."""
    names = {fold.name for fold in plan}
    for run_dir in sorted((out / FOLDS_DIR).glob("*")):
        if run_dir.name not in names or dealt_otherwise(run_dir):
            raise MerError(
                f"{out}: holds the folds of another cross-validation (e.g. {FOLDS_DIR}/{run_dir.name}); "
                "pass a new --out, or the same --folds and --repeats as before"
            )
