"""The clip-level split: groups stay together, classes are stratified, the seed decides."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mer_fastai.data.split import split_groups
from mer_fastai.errors import MerError


def clips(n_groups: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Labels and groups of clips: groups of 1-4 clips, mostly of one class."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(n_groups):
        main = f"c{g % 4}"
        for _ in range(rng.integers(1, 5)):
            labels.append(main if rng.random() < 0.8 else f"c{rng.integers(0, 4)}")
            groups.append(f"artist{g}")
    return labels, groups


def test_groups_stay_together_and_classes_are_stratified():
    labels, groups = clips(120)
    sides = split_groups(labels, groups, 0.2, seed=42)
    for group in set(groups):
        assert len({side for side, g in zip(sides, groups) if g == group}) == 1
    total, valid = Counter(labels), Counter(label for label, side in zip(labels, sides) if side == "valid")
    for name, count in total.items():
        assert abs(valid[name] / count - 0.2) < 0.05, (name, valid[name], count)


def test_the_seed_decides_and_both_sides_are_kept():
    labels, groups = clips(40)
    assert split_groups(labels, groups, 0.25, seed=1) == split_groups(labels, groups, 0.25, seed=1)
    assert split_groups(labels, groups, 0.25, seed=1) != split_groups(labels, groups, 0.25, seed=2)
    two = split_groups(["a", "a"], ["x", "y"], 0.2, seed=0)  # too few to reach 20%: one each side
    assert sorted(two) == ["train", "valid"]
    big = split_groups(["a"] * 10 + ["a"], ["x"] * 10 + ["y"], 0.9, seed=0)  # one group holds most clips
    assert set(big) == {"train", "valid"}


def test_bad_arguments_are_clear_errors():
    with pytest.raises(MerError, match="between 0 and 1"):
        split_groups(["a", "b"], ["x", "y"], 1.5, seed=0)
    with pytest.raises(MerError, match="fewer than two"):
        split_groups(["a", "b"], ["x", "x"], 0.2, seed=0)


def test_adding_clips_later_moves_few_existing_groups():
    labels, groups = clips(120)
    before = dict(zip(groups, split_groups(labels, groups, 0.2, seed=42), strict=True))
    after = dict(zip(groups + ["newcomer"], split_groups([*labels, "c1"], [*groups, "newcomer"], 0.2, seed=42)))
    assert sum(before[g] != after[g] for g in before) <= 6  # of 120 groups; a fresh shuffle would move ~38


def test_training_keeps_every_class_even_at_a_large_valid_share():
    labels = ["rare"] + ["common"] * 20
    groups = ["solo"] + [f"g{i}" for i in range(20)]
    for seed in range(10):
        sides = split_groups(labels, groups, 0.6, seed=seed)
        assert sides[0] == "train" and "valid" in sides
