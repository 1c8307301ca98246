"""Train/validation split at clip level: group-aware and stratified by class."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from .errors import MerError

SPLIT_METHOD = "hashed-greedy-stratified-groups-1"  # recorded in dataset.json: another method is another data set


def split_groups(labels: list[str], groups: list[str], valid_pct: float, seed: int) -> list[str]:
    """`"train"` or `"valid"` for each clip; clips of one group always land on the same side.

    Stratified by class: the validation side should hold `valid_pct` of every class's clips. Groups are
    taken in a seeded pseudo-random order that depends on each group's own name only (so adding clips
    later moves few existing ones), each put on validation when that brings the classes' validation
    shares closer to `valid_pct` (least squares over classes); then single groups are moved across while
    that still helps. Both sides keep at least one group.
    """
    if not 0 < valid_pct < 1:
        raise MerError(f"--valid-pct must lie between 0 and 1 (got {valid_pct})")
    names = sorted(set(groups))
    if len(names) < 2:
        raise MerError("cannot split fewer than two clips (or groups) into train and validation; add audio")
    classes = sorted(set(labels))
    column = {name: i for i, name in enumerate(classes)}
    counts = {name: np.zeros(len(classes)) for name in names}
    for label, group in zip(labels, groups, strict=True):
        counts[group][column[label]] += 1
    totals = np.array([Counter(labels)[name] for name in classes], dtype=float)

    def error(valid: np.ndarray) -> float:
        return float(np.sum((valid / totals - valid_pct) ** 2))

    order = sorted(names, key=lambda name: hashlib.sha1(f"{seed}:{name}".encode()).hexdigest())
    chosen: set[str] = set()
    valid = np.zeros(len(classes))
    for name in order:
        if error(valid + counts[name]) < error(valid):
            chosen.add(name)
            valid = valid + counts[name]
    moved = True
    while moved:  # each move lowers the error, so this ends
        moved = False
        for name in order:
            other = valid - counts[name] if name in chosen else valid + counts[name]
            if error(other) < error(valid) - 1e-12:
                chosen ^= {name}
                valid, moved = other, True
    for column_index in range(len(classes)):  # training keeps some clips of every class
        while valid[column_index] == totals[column_index] and len(chosen) > 1:
            back = min((n for n in chosen if counts[n][column_index]), key=lambda n: counts[n].sum())
            chosen.discard(back)
            valid = valid - counts[back]
    if not chosen:  # every group alone overshoots the target: the smallest one validates
        chosen.add(min(order, key=lambda name: counts[name].sum()))
    if len(chosen) == len(names):
        chosen.discard(order[0])
    return ["valid" if group in chosen else "train" for group in groups]
