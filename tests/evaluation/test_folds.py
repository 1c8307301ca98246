"""Dealing the clips of a cross-validation into grouped, stratified folds."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.errors import MerError
from mer_fastai.evaluation.folds import clip_groups, k_fold_groups, plan_folds


def test_folds_keep_groups_together_and_stratify_classes():
    labels = [c for c in "ab" for _ in range(12)]
    groups = [f"{label}{i // 2}" for label in "ab" for i in range(12)]  # 12 groups of two clips
    folds = k_fold_groups(labels, groups, 3, seed=1)
    for group in set(groups):
        assert len({f for f, g in zip(folds, groups) if g == group}) == 1
    per_fold = Counter((f, label) for f, label in zip(folds, labels))
    assert all(per_fold[(f, label)] == 4 for f in range(3) for label in "ab")
    assert k_fold_groups(labels, groups, 3, seed=1) == folds  # deterministic
    with pytest.raises(MerError, match="--folds 13: the data set has only 12"):
        k_fold_groups(labels, groups, 13, seed=1)
    with pytest.raises(MerError, match="--folds must be at least 2"):
        k_fold_groups(labels, groups, 1, seed=1)


def test_every_fold_gets_a_group_and_a_class_in_one_group_is_refused():
    labels, groups = ["a"] * 5 + ["b"], ["big"] * 5 + ["small"]
    assert sorted(k_fold_groups(labels, groups, 2, seed=0)) == [0, 0, 0, 0, 0, 1]
    clips = {f"c{i}": (label, group) for i, (label, group) in enumerate(zip(labels, groups))}
    with pytest.raises(MerError, match="class 'a' has all its clips in this fold's validation"):
        plan_folds(clips, 2, 1, seed=0)


def test_repeats_deal_other_folds_and_every_clip_validates_once_per_repeat():
    clips = {f"{label}/{i}": (label, f"{label}/{i}") for label in "abc" for i in range(6)}
    plan = plan_folds(clips, 3, 2, seed=0)
    assert [f.name for f in plan] == [str(i) for i in range(6)] and [f.repeat for f in plan] == [0, 0, 0, 1, 1, 1]
    for repeat in (0, 1):
        held = [clip for f in plan if f.repeat == repeat for clip in f.valid_clips]
        assert sorted(held) == sorted(clips)
    assert {f.valid_clips for f in plan[:3]} != {f.valid_clips for f in plan[3:]}


def test_without_group_by_every_clip_is_its_own_group(tiny_data):
    rows = read_manifest(tiny_data)
    identity = {row.clip_id: row.clip_id for row in rows}
    assert clip_groups(tiny_data, read_info(tiny_data), rows) == (identity, "manifest")
    older = [dataclasses.replace(row, group="") for row in rows]  # a manifest written before it recorded groups
    assert clip_groups(tiny_data, read_info(tiny_data), older) == (identity, "clips")


def test_groups_of_a_data_set_prepared_with_group_by_are_recovered(tiny_audio, tmp_path):
    from mer_fastai.preparation.prepare import prepare_dataset
    from tests.conftest import TINY_SPEC

    quadrant = {"happy": "Q1", "angry": "Q2", "sad": "Q3", "tender": "Q4"}
    clips = sorted(p.relative_to(tiny_audio).with_suffix("").as_posix() for p in tiny_audio.rglob("*.wav"))
    artist = {clip: f"artist{i // 2}" for i, clip in enumerate(clips)}  # two clips of one class per artist
    labels = tmp_path / "annotations.csv"
    labels.write_text(
        "Song,Artist,Quadrant\n" + "".join(f"{c},{artist[c]},{quadrant[c.split('/')[0]]}\n" for c in clips)
    )
    data = tmp_path / "data"
    prepare_dataset(tiny_audio, data, "emotions", labels, spec=TINY_SPEC, group_by="Artist", workers=1, progress=False)
    rows = read_manifest(data)
    groups, source = clip_groups(data, read_info(data), rows)
    assert source == "manifest" and groups == artist
    older = [dataclasses.replace(row, group="") for row in rows]  # a manifest written before it recorded groups
    assert clip_groups(data, read_info(data), older) == (artist, "labels file")
    labels.unlink()
    with pytest.raises(MerError, match="cannot be read back from .*prepare it again"):
        clip_groups(data, read_info(data), older)
    plan = plan_folds({row.clip_id: (row.label, groups[row.clip_id]) for row in rows}, 2, 1, seed=0)
    for fold in plan:
        assert {artist[c] for c in fold.valid_clips}.isdisjoint(artist[c] for c in clips if c not in fold.valid_clips)


def test_folds_stratify_each_mood_of_a_multilabel_clip():
    moods = [("calm",), ("calm", "sad"), ("happy",), ("happy", "sad")] * 4  # 16 clips, each mood on 8
    folds = k_fold_groups(moods, [f"c{i}" for i in range(len(moods))], 2, seed=3)
    for mood in ("calm", "happy", "sad"):
        held = Counter(f for f, label in zip(folds, moods) if mood in label)
        assert held == Counter({0: 4, 1: 4}), mood
    clips = {f"c{i}": (label, f"c{i}") for i, label in enumerate([("a",), ("a", "b"), ("a",), ("a",)])}
    with pytest.raises(MerError, match="mood 'b' has all its clips in this fold's validation"):
        plan_folds(clips, 2, 1, seed=0, learned="mood")
    # a clip without any mood is balanced over the folds, but it is no mood that a fold must learn
    clips = {f"c{i}": (label, f"c{i}") for i, label in enumerate([("a",), ("a",), ("a",), ("none",)])}
    assert len(plan_folds(clips, 2, 1, seed=0, learned="mood")) == 2
