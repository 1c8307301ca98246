"""Which clips a data set holds: audio files matched to their labels, one clip per recording, each assigned to
train, validation or test, with warnings about classes the split leaves thin."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..bounds import quote
from ..data.audio import same_recordings
from ..data.dataset import ManifestRow
from ..data.fingerprint import joined_groups, matching_pairs
from ..data.labelfiles import ClipLabel, LabelTable, nfc
from ..data.matching import match_clips, unlabeled_error
from ..data.split import mood_stratum, split_groups
from ..errors import MerError
from ..tasks.base import Task


@dataclass(frozen=True)
class ClipJob:
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
class Plan:
    """The clips to prepare, the files left out (with why) and warnings about the labels or the split."""

    jobs: list[ClipJob]
    skipped: list[dict[str, str]]
    notes: list[str]
    groups: dict[str, str] = field(default_factory=dict)  # clip key → the group the split kept together


def plan_clips(
    audio_dir: Path,
    task: Task,
    table: LabelTable,
    files: list[Path],
    valid_pct: float,
    seed: int,
    skip_unlabeled: bool,
    test_pct: float = 0.0,
    prints: dict[str, str] | None = None,
) -> Plan:
    """Match files to labels, check the classes and assign each clip to train, validation or test (stratified by
    class, or per mood where the `task`'s labels are mood sets).

    `prints`: the fingerprints known so far, by clip key (see `data.fingerprint`): clips that sound like one
    recording join one group, so that they share a side (and a cross-validation fold), or are refused when
    labelled differently."""
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
            f"{table.source}: all {len(matched)} matched clip(s) fall in {quote(next(iter(classes)))}, "
            "what the split is "
            "stratified by (a bin of the first target, or a mood set); add clips with other values"
        )
    if len(classes) < 2:
        raise MerError(
            f"{table.source}: all {len(matched)} matched clip(s) have class {quote(next(iter(classes)))}; "
            "a data set needs "
            "at least two classes: add clips of another class, or check --labels and --feature"
        )
    labels = [_stratum(task, table, clip) for _, _, clip in matched]
    groups, sounds_alike = _near_duplicates(audio_dir, matched, prints or {})
    sides = split_groups(labels, groups, valid_pct, seed, test_pct)
    clips = [
        ClipJob(str(file), name, _clip_key(file, audio_dir), clip.label, side, _targets(table, clip))
        for (file, name, clip), side in zip(matched, sides)
    ]
    skipped = [{"file": str(file), "reason": reason} for file, reason in excluded]
    skipped += [{"file": str(file), "reason": f"no row in {table.source}"} for file in unlabeled]
    # each "class" of a mood-set task is a mood set: the split is stratified per mood instead
    notes = [*table.notes, *duplicates, *sounds_alike]
    notes += [] if task.facts.labels_are_sets else split_notes(clips, test_pct > 0)
    return Plan(clips, skipped, notes, {clip.key: group for clip, group in zip(clips, groups, strict=True)})


Matched = list[tuple[Path, str, ClipLabel]]  # (file, clip id, label), as `data.matching.match_clips` pairs them


def _clip_key(file: Path, root: Path) -> str:
    """File-system-safe unique name of a clip, from its path below the audio folder (in NFC)."""
    relative = file.relative_to(root) if file.is_relative_to(root) else Path(file.name)
    return nfc("__".join(relative.with_suffix("").parts).replace(" ", "_"))


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
            f"note: {', '.join(map(repr, others))} {verb} {how.format(repr(kept[1]))}; kept once, as {quote(kept[1])}"
        )
    return [item for item in matched if item[0] not in dropped], notes


def _near_duplicates(audio_dir: Path, matched: Matched, prints: dict[str, str]) -> tuple[list[str], list[str]]:
    """The split group of each clip, the groups of clips whose `prints` match joined; and a note per match.
    A match labelled differently is refused, naming both files."""
    by_key = {_clip_key(file, audio_dir): (file, name, clip) for file, name, clip in matched}
    pairs = matching_pairs({key: prints[key] for key in by_key if key in prints})
    notes = []
    for a, b, share in pairs:
        (file, name, clip), (other, other_name, other_clip) = by_key[a], by_key[b]
        if (clip.label, clip.values) != (other_clip.label, other_clip.values):
            raise MerError(
                f"{other}: sounds like the same recording as {file} (their fingerprints disagree in {share:.0%}: "
                "re-encoded copies?) but is labelled {_shown(other_clip)}, that one {_shown(clip)}; "
                "one recording takes one label: remove a copy or correct its label"
            )
        notes.append(
            f"note: {quote(other_name)} sounds like the same recording as {quote(name)} (fingerprints disagree in "
            f"{share:.0%}); both kept, on one side of the split"
        )
    groups = joined_groups({key: clip.group or name for key, (_, name, clip) in by_key.items()}, pairs)
    return [groups[key] for key in by_key], notes


def _through_link(audio_dir: Path, file: Path) -> bool:
    """Whether `file` is reached through a link below `audio_dir` (it or a folder on its way)."""
    return Path(os.path.realpath(file)) != audio_dir.resolve() / file.relative_to(audio_dir)


def _shown(clip: ClipLabel) -> str:
    """A clip's label for a message, with its values (regression targets, mood flags) if it has any."""
    values = "" if clip.values is None else f" ({', '.join(f'{value:g}' for value in clip.values)})"
    return f"{quote(clip.label)}{values}"


def _stratum(task: Task, table: LabelTable, clip: ClipLabel) -> str | tuple[str, ...]:
    """What the split stratifies a clip by: its class (or bin), or each of its moods ("none" without any)."""
    if not task.facts.labels_are_sets:
        return clip.label
    return mood_stratum(table.targets, clip.values or ())


def _targets(table: LabelTable, clip: ClipLabel) -> dict[str, float]:
    """A regression clip's target values by name (empty for classification)."""
    return dict(zip(table.targets, clip.values or (), strict=True)) if table.targets else {}


def split_notes(jobs: list[ClipJob], tested: bool = False) -> list[str]:
    """Warnings: a class with a single clip, a class that validation (or the test split) does not hold."""
    notes = []
    sides = (("valid", "validation", "--valid-pct"), ("test", "the test split", "--test-pct"))
    for label, count in sorted(Counter(job.label for job in jobs).items()):
        if count == 1:
            notes.append(f"warning: class {quote(label)} has a single clip; its scores rest on one recording")
            continue
        for split, name, option in sides[: 1 + tested]:
            if not any(job.label == label and job.split == split for job in jobs):
                notes.append(
                    f"warning: class {quote(label)} has no clip in {name} (its {count} clips or their groups are "
                    f"elsewhere); its {name} scores will be missing: add clips or raise {option}"
                )
    return notes


def window_notes(rows: list[ManifestRow]) -> list[str]:
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
            notes.append(
                f"warning: class {quote(label)} is validated on one clip only ({quote(name)}); its scores rest on it"
            )
        elif count * 2 > total:
            notes.append(
                f"warning: clip {quote(name)} holds {count} of the {total} validation windows of class {quote(label)}; "
                "that class's scores rest mostly on one recording"
            )
    return notes
