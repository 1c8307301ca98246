"""Train/validation split at clip level: group-aware and stratified by class."""

from __future__ import annotations

import numpy as np

from .errors import MerError


def split_groups(labels: list[str], groups: list[str], valid_pct: float, seed: int) -> list[str]:
    """`"train"` or `"valid"` for each clip; clips of one group always land on the same side."""
    if not 0 < valid_pct < 1:
        raise MerError(f"--valid-pct must lie between 0 and 1 (got {valid_pct})")
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    n_groups = len(set(groups))
    if n_groups < 2:
        raise MerError("cannot split fewer than two clips (or groups) into train and validation; add audio")
    indices = np.arange(len(labels))
    n_splits = max(2, int(round(1 / valid_pct)))
    class_sizes = np.unique(labels, return_counts=True)[1]
    if n_groups >= n_splits and class_sizes.min() >= n_splits:
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, valid = next(folds.split(indices, labels, groups))
    else:  # too few clips to stratify: a plain group-aware split
        splitter = GroupShuffleSplit(n_splits=1, test_size=valid_pct, random_state=seed)
        _, valid = next(splitter.split(indices, labels, groups))
    chosen = set(valid.tolist())
    return ["valid" if i in chosen else "train" for i in indices]
