"""benchmarks/test_split.py: its test split is prepare's (artist-disjoint, a fifth of every quadrant) and a probe
reads the clip-level features it is given."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from benchmarks.test_split import PROBE, held_out_test_clips, score_once


def test_the_test_split_holds_a_fifth_of_each_quadrant_and_no_artist_of_the_rest():
    ids = [f"Q{i % 4 + 1}/S{i}.mp3" for i in range(200)]
    labels = [clip[:2] for clip in ids]
    artists = [f"A{i // 2}" for i in range(200)]  # two clips (of two quadrants) per artist
    held = held_out_test_clips(ids, labels, artists)
    assert {a for c, a in zip(ids, artists) if c in held}.isdisjoint(a for c, a in zip(ids, artists) if c not in held)
    for quadrant in ("Q1", "Q2", "Q3", "Q4"):
        assert sum(c in held for c in ids if c.startswith(quadrant)) == 10


def test_a_probe_learns_from_the_clip_features_added_beside_uninformative_patches():
    rng = np.random.default_rng(0)
    clips = [f"c{i}" for i in range(80)]
    y = {clip: i % 2 for i, clip in enumerate(clips)}
    arrays = {
        clip: {"penultimate": rng.normal(0, 1, (3, 4)).astype(np.float32), "extra": np.array([2.0 * y[clip] - 1])}
        for clip in clips
    }
    alone = score_once(PROBE, arrays, clips[:60], clips[60:], y, seeds=1)
    fused = score_once(replace(PROBE, extra="extra"), arrays, clips[:60], clips[60:], y, seeds=1)
    assert fused["accuracies"] == [1.0] and fused["recall"] == [1.0, 1.0] and fused["clips"] == 20
    assert alone["accuracies"][0] < 0.8
