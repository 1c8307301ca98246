"""Multilabel data sets end to end: moods from vote shares, 0/1 columns or ';' lists → train → scores."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from mer_fastai.api.training import train
from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.data.split import split_groups
from mer_fastai.data.synth import STUDY_CLASSES, make_study_style_set
from mer_fastai.data.targets import read_moods
from mer_fastai.errors import MerError
from mer_fastai.models.modelfile import load_model, read_model
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.scoring.scores import multilabel_metrics, score_multilabel
from mer_fastai.training.fit import TrainConfig
from tests.conftest import TINY_SPEC

MOODS = list(STUDY_CLASSES)  # anger, fear, happy, sad, tender


@pytest.fixture(scope="module")
def study_audio(tmp_path_factory):
    return make_study_style_set(tmp_path_factory.mktemp("study"), clips_per_class=3, seconds=2.0, seed=5)[0]


def _shares(n: int) -> dict[str, float]:
    """Clip n's vote shares: 0.6 for its own emotion, 0.4 (two clips in three) or 0.1 for a neighbour."""
    own = MOODS[(n - 1) // 3]
    other = MOODS[(MOODS.index(own) + 1 + n % 2) % len(MOODS)]
    return {mood: 0.6 if mood == own else (0.4 if n % 3 else 0.1) if mood == other else 0.0 for mood in MOODS}


@pytest.fixture(scope="module")
def shares_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "shares.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", *MOODS])
        writer.writerows([f"{n:03d}.wav", *(f"{v:.2f}" for v in _shares(n).values())] for n in range(1, 16))
    return path


@pytest.fixture(scope="module")
def mood_data(study_audio, shares_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("moods")
    prepare_dataset(study_audio, out, None, shares_file, spec=TINY_SPEC, id_column="clip", task="multilabel",
                    targets=MOODS, workers=1, progress=False)  # fmt: skip
    return out


def test_vote_shares_keep_the_moods_with_half_the_top_share(mood_data):
    info = read_info(mood_data)
    assert (info.task, info.targets, info.feature) == ("multilabel", MOODS, "moods")
    for row in read_manifest(mood_data):
        shares = _shares(int(row.clip_id))
        expected = [float(v > 0 and v >= 0.5 * max(shares.values())) for v in shares.values()]
        assert list(row.targets) == MOODS and list(row.values) == expected
        chosen = "+".join(sorted(m for m, on in zip(MOODS, expected) if on))
        assert row.label == chosen and row.image.startswith(f"{row.split}/{chosen}/")


def test_threshold_is_a_share_of_the_top_one(shares_file):
    loose = read_moods(shares_file, targets=MOODS, id_column="clip", threshold=0.1)
    assert all(sum(clip.values) == 2 for clip in loose.labels.values())  # 0.1 ≥ 0.1 × 0.6: both moods hold
    default = read_moods(shares_file, targets=MOODS, id_column="clip")
    assert sum(default.labels["3"].values) == 1  # 0.1 < 0.5 × 0.6: only the top mood
    with pytest.raises(MerError, match=re.escape("--threshold must be a number above 0 and at most 1 (got 1.5)")):
        read_moods(shares_file, targets=MOODS, id_column="clip", threshold=1.5)


def test_flags_and_semicolon_lists_give_the_same_moods(tmp_path):
    flags = tmp_path / "flags.csv"
    flags.write_text("id,happy,sad,calm\na,1,0,1\nb,0,1,0\nc,1,1,0\n")
    listed = tmp_path / "listed.csv"
    listed.write_text("id,moods\na,Happy; calm\nb,sad\nc,sad;happy\n")
    by_flags = read_moods(flags, targets=["calm", "happy", "sad"], id_column="id")
    by_list = read_moods(listed, label_column="moods", id_column="id")
    assert by_list.targets == ["calm", "happy", "sad"]
    assert {k: v.values for k, v in by_flags.labels.items()} == {k: v.values for k, v in by_list.labels.items()}
    assert by_list.labels["a"].label == "calm+happy"


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("id,happy,sad\na,1,\nb,0,1\n", {"targets": ["happy", "sad"]}, "row 2 has no usable value"),
        ("id,happy,sad\na,1,-1\nb,0,1\n", {"targets": ["happy", "sad"]}, "row 2 (sad = -1) is negative"),
        ("id,happy,sad\na,1,inf\nb,0,1\n", {"targets": ["happy", "sad"]}, "row 2 (sad = inf) is not finite"),
        ("id,moods\na,happy\nb,\n", {"label_column": "moods"}, "row 3 has no usable value in column 'moods'"),
        ("id,moods\na,happy\nb, ; ;\n", {"label_column": "moods"}, "row 3 has no usable value in column 'moods'"),
        ("id,happy,sad\na,1,0\nb,1,0\n", {"targets": ["happy", "sad"]}, "mood(s) sad hold for no clip"),
        ("id,moods\na,happy/sad\n", {"label_column": "moods"}, "cannot name a folder"),
        ("id,moods\na,happy\n", {"label_column": "moods", "targets": ["happy"]}, "set one of them, not both"),
        ("id,moods\na,happy\n", {}, "--target or --label-column: a multilabel data set reads its moods from"),
        ("id,moods\na,happy\n", {"label_column": "moods", "threshold": 0.5}, "--threshold reads the vote shares"),
    ],
)
def test_bad_mood_labels_are_refused(tmp_path, text, kwargs, message):
    path = tmp_path / "moods.csv"
    path.write_text(text)
    with pytest.raises(MerError, match=re.escape(message)):
        read_moods(path, id_column="id", **kwargs)


def test_the_split_is_stratified_per_mood():
    labels = [("happy",), ("happy", "sad"), ("sad",), ("calm",), ("calm", "happy"), ("sad", "calm")] * 4
    sides = split_groups(labels, [f"c{i}" for i in range(len(labels))], 0.25, seed=1)
    for mood in ("happy", "sad", "calm"):
        held = [side for label, side in zip(labels, sides) if mood in label]
        assert 0 < held.count("valid") < len(held)


@pytest.fixture(scope="module")
def mood_run(mood_data, tmp_path_factory):
    config = TrainConfig(arch="alexnet", epochs=1, bs=8, size=64, weights="none", lr=1e-3)
    return train(mood_data, config, tmp_path_factory.mktemp("run") / "run", show=False)


def test_train_writes_multilabel_scores_predictions_and_chart(mood_run):
    metrics = json.loads((mood_run.run_dir / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and metrics["monitor"] == "macro_f1" and metrics["threshold"] == 0.5
    for block in (metrics, metrics["track"]):
        assert set(block["per_label"]) == set(MOODS)
        assert {"micro_f1", "macro_f1", "map"} <= set(block)
        assert all(set(s) == {"precision", "recall", "f1", "ap", "support"} for s in block["per_label"].values())
    assert (mood_run.run_dir / "per_label.png").read_bytes().startswith(b"\x89PNG")
    with (mood_run.run_dir / "valid_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    probs = np.array([[float(r[f"prob_{m}"]) for m in MOODS] for r in rows])
    assert ((probs > 0) & (probs < 1)).all() and len(rows) == metrics["n_windows"]
    for row, p in zip(rows, probs):
        assert row["predicted"] == ";".join(m for m, v in zip(MOODS, p) if v >= 0.5)
    _, meta = read_model(mood_run.run_dir)
    assert meta.task == "multilabel" and meta.classes == tuple(MOODS) and meta.scale == ()
    assert load_model(mood_run.run_dir)[1] == meta  # predict, evaluate, export serve it (test_task_inference.py)


def test_multilabel_scores_match_sklearn():
    rng = np.random.default_rng(2)
    true = rng.integers(0, 2, size=(30, 3))
    true[0] = 1  # every mood occurs
    probs = np.clip(true * 0.5 + rng.uniform(0, 0.6, size=(30, 3)), 0, 1)
    metrics = multilabel_metrics(probs, true, ["a", "b", "c"], 0.5)
    predicted = (probs >= 0.5).astype(int)
    assert metrics["micro_f1"] == pytest.approx(f1_score(true, predicted, average="micro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(true, predicted, average="macro"))
    aps = [average_precision_score(true[:, i], probs[:, i]) for i in range(3)]
    assert metrics["map"] == pytest.approx(np.mean(aps)) and metrics["per_label"]["b"]["ap"] == pytest.approx(aps[1])
    scores, tracks = score_multilabel(probs[:2], true[:1].repeat(2, axis=0), ["x", "x"], ["a", "b", "c"], 0.5)
    assert tracks.predicted[0] == pytest.approx(probs[:2].mean(axis=0)) and scores["n_tracks"] == 1


def test_demo_multilabel_learns_moods_from_vote_shares(tmp_path):
    from mer_fastai.data.synth import MOOD_CUES, VOTES_FILE
    from mer_fastai.experiments.demo import run_demo

    result = run_demo(tmp_path, epochs=1, size=64, clips_per_class=3, task="multilabel")
    moods, data = list(MOOD_CUES), tmp_path / "data-multilabel"
    assert result.run.metrics["task"] == "multilabel" and read_info(data).targets == moods
    assert set(result.run.metrics["per_label"]) == set(moods)
    with (tmp_path / "demo-moods" / VOTES_FILE).open() as handle:
        votes = list(csv.DictReader(handle))
    assert len(votes) == 15 and all(sum(float(row[m]) for m in moods) == pytest.approx(1, abs=0.01) for row in votes)
    assert any(sum(row.values) > 1 for row in read_manifest(data))  # several moods hold for some clips
    for name in ("per_label.png", "report.html", "track_predictions.csv"):
        assert (result.run.run_dir / name).is_file()
