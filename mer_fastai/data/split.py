"""Train/validation(/test) split at clip level: group-aware and stratified by class."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from ..errors import MerError

SPLIT_METHOD = "hashed-greedy-stratified-groups-1"  # recorded in dataset.json: another method is another data set


Labels = list[str] | list[tuple[str, ...]]  # a class per clip, or (multilabel) the moods of each clip
NO_MOOD = "none"  # the stratum of a multilabel clip that holds no mood (balanced, but nothing a model learns)


def split_groups(labels: Labels, groups: list[str], valid_pct: float, seed: int, test_pct: float = 0.0) -> list[str]:
    """`"train"`, `"valid"` or (with `test_pct`) `"test"` for each clip; clips of one group stay on one side.

    The test side is chosen first, from all clips, holding `test_pct` of every class's clips; validation is
    then chosen from the rest so that it holds `valid_pct` of all clips (`valid_pct / (1 - test_pct)` of
    the rest). Each side is chosen by `held_out_groups`. Without `test_pct` the split is as before.
    A clip labelled with a tuple of moods counts toward each of them, so each mood is stratified.
    """
    if not 0 < valid_pct < 1:
        raise MerError(f"--valid-pct must lie between 0 and 1 (got {valid_pct})")
    if not 0 <= test_pct < 1 or valid_pct + test_pct >= 1:
        raise MerError(
            f"--test-pct must lie between 0 and 1 and leave clips to train "
            f"(got {test_pct} with --valid-pct {valid_pct})"
        )
    test: set[str] = set()
    if test_pct:
        test = held_out_groups(labels, groups, test_pct, f"test:{seed}", "test")
    rest = [i for i, group in enumerate(groups) if group not in test]
    share = valid_pct / (1 - test_pct)
    valid = held_out_groups([labels[i] for i in rest], [groups[i] for i in rest], share, str(seed), "validation")
    return ["test" if group in test else "valid" if group in valid else "train" for group in groups]


def strata(label: str | tuple[str, ...]) -> tuple[str, ...]:
    """The classes a clip counts toward: its class, or each of its moods."""
    return label if isinstance(label, tuple) else (label,)


def mood_stratum(moods: list[str], values: tuple[float, ...]) -> tuple[str, ...]:
    """What a multilabel clip is stratified by: each mood it holds (values 1/0 per mood), or (`NO_MOOD`,)."""
    return tuple(mood for mood, on in zip(moods, values) if on) or (NO_MOOD,)


def group_counts(labels: Labels, groups: list[str]) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """(classes, clips per class of each group, clips per class): what stratifying by class balances; a clip
    labelled with a tuple of moods counts toward each."""
    tally = Counter(name for label in labels for name in strata(label))
    classes = sorted(tally)
    column = {name: i for i, name in enumerate(classes)}
    counts = {name: np.zeros(len(classes)) for name in sorted(set(groups))}
    for label, group in zip(labels, groups, strict=True):
        for name in strata(label):
            counts[group][column[name]] += 1
    return classes, counts, np.array([tally[name] for name in classes], dtype=float)


def held_out_groups(labels: Labels, groups: list[str], pct: float, salt: str, side: str) -> set[str]:
    """The groups held out so that they hold `pct` of every class's clips (stratified by class; a clip with a
    tuple of moods counts toward each).

    Groups are taken in a seeded pseudo-random order that depends on each group's own name only (so adding
    clips later moves few existing ones), each held out when that brings the classes' held-out shares
    closer to `pct` (least squares over classes); then single groups are moved across while that still
    helps. Both sides keep at least one group, and the kept side keeps some clips of every class.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        raise MerError(f"cannot split fewer than two clips (or groups) into training and {side}; add audio")
    classes, counts, totals = group_counts(labels, groups)

    def error(held: np.ndarray) -> float:
        return float(np.sum((held / totals - pct) ** 2))

    order = sorted(names, key=lambda name: hashlib.sha1(f"{salt}:{name}".encode()).hexdigest())
    chosen: set[str] = set()
    held = np.zeros(len(classes))
    for name in order:
        if error(held + counts[name]) < error(held):
            chosen.add(name)
            held = held + counts[name]
    moved = True
    while moved:  # each move lowers the error, so this ends
        moved = False
        for name in order:
            other = held - counts[name] if name in chosen else held + counts[name]
            if error(other) < error(held) - 1e-12:
                chosen ^= {name}
                held, moved = other, True
    for column_index in range(len(classes)):  # the kept side keeps some clips of every class
        while held[column_index] == totals[column_index] and len(chosen) > 1:
            back = min((n for n in chosen if counts[n][column_index]), key=lambda n: counts[n].sum())
            chosen.discard(back)
            held = held - counts[back]
    if not chosen:  # every group alone overshoots the target: the smallest one is held out
        chosen.add(min(order, key=lambda name: counts[name].sum()))
    if len(chosen) == len(names):
        chosen.discard(order[0])
    return chosen
