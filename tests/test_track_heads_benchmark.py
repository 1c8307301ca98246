"""benchmarks/track_heads.py: its pooling ignores padded patches, its folds are cv's, and a row runs end to end."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import torch

from benchmarks.track_heads import ROWS, Pool, folds_of, load_clips, run_row


def test_pooling_of_a_padded_clip_is_that_of_its_own_patches():
    torch.manual_seed(0)
    short, long = torch.randn(3, 5), torch.randn(7, 5)
    x = torch.zeros(2, 7, 5)
    x[0, :3], x[1] = short, long
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, :3], mask[1] = True, True
    pooled = Pool("mean+std+max", 5)(x, mask)
    expected = torch.cat([short.mean(0), short.std(0, unbiased=False), short.amax(0)])
    torch.testing.assert_close(pooled[0], expected, atol=1e-3, rtol=1e-4)  # std carries a 1e-6 floor
    attention = Pool("attention", 5)
    torch.testing.assert_close(attention(x, mask)[0], attention(short[None], torch.ones(1, 3, dtype=torch.bool))[0])


def test_rows_run_on_the_folds_cv_deals(tmp_path):
    rng = np.random.default_rng(0)
    with (tmp_path / "annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Song", "Artist", "Title", "Quadrant"])
        for i in range(40):
            quadrant = f"Q{i % 2 + 1}"
            writer.writerow([f"S{i}", f"A{i // 2}", "t", quadrant])
            shift = 1.0 if quadrant == "Q1" else -1.0  # learnable: the classes differ in every feature
            patches = rng.integers(2, 6)
            np.savez(tmp_path / f"{quadrant}__S{i}.npz", pooled=rng.normal(shift, 1, (patches, 8)),
                     penultimate=rng.normal(shift, 1, (patches, 4)), tags=rng.random((patches, 3)))  # fmt: skip
    ids, labels, artists, arrays = load_clips([tmp_path], tmp_path / "annotations.csv")
    folds = folds_of(ids, labels, artists)
    assert sorted(c for fold in folds for c in fold) == sorted(ids)  # every clip held out once
    for fold in folds:  # an artist's clips on one side
        assert all((ids[2 * k] in fold) == (ids[2 * k + 1] in fold) for k in range(20))
    y = {clip: int(label == "Q2") for clip, label in zip(ids, labels, strict=True)}
    for name in ("window", "track mean+std+max", "track attention", "logreg mean+std (C 0.01)"):
        head = replace(ROWS[name], epochs=30) if ROWS[name].kind != "logreg" else ROWS[name]
        result = run_row(head, arrays, ids, y, folds, seeds=1)
        assert len(result["folds"]) == 5 and np.mean(result["folds"]) > 0.8, name
