"""Cross-validation: grouped stratified folds, one run per fold, pooled out-of-fold scores, resume, ensemble."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import mer_fastai.cv as cv_module
from mer_fastai.cli.main import app
from mer_fastai.cv import (
    CV_FILE,
    OOF_PREDICTIONS,
    OOF_TRACKS,
    clip_groups,
    describe,
    k_fold_groups,
    plan_folds,
    run_cv,
)
from mer_fastai.dataset import read_info, read_manifest
from mer_fastai.errors import MerError
from mer_fastai.predict import Predictor

from .test_predict import TINY_CONFIG

runner = CliRunner()
CLI_OPTIONS = ["--arch", "squeezenet1_0", "--mode", "whole", "--weights", "none", "--epochs", "1", "--bs", "4"]
CLI_OPTIONS += ["--size", "64", "--lr", "1e-3", "--workers", "0", "--folds", "2"]


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


def test_describe_gives_mean_sd_and_a_t_interval():
    values = [0.5, 0.6, 0.7]
    result = describe(values)
    assert result["mean"] == pytest.approx(0.6) and result["sd"] == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2)
    assert result["ci95"] == pytest.approx([0.6 - half, 0.6 + half]) and result["values"] == values


def test_without_group_by_every_clip_is_its_own_group(tiny_data):
    rows = read_manifest(tiny_data)
    identity = {row.clip_id: row.clip_id for row in rows}
    assert clip_groups(tiny_data, read_info(tiny_data), rows) == (identity, "manifest")
    older = [dataclasses.replace(row, group="") for row in rows]  # a manifest written before it recorded groups
    assert clip_groups(tiny_data, read_info(tiny_data), older) == (identity, "clips")


@pytest.fixture(scope="module")
def cv_dir(tiny_data, tmp_path_factory) -> Path:
    """`mer-fastai cv` with 2 folds on the tiny data set (16 clips, 4 classes)."""
    out = tmp_path_factory.mktemp("cv") / "cv"
    result = runner.invoke(app, ["cv", str(tiny_data), *CLI_OPTIONS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean ± sd" in result.output
    return out


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_cv_predicts_every_clip_once_out_of_fold(cv_dir, tiny_data):
    rows = read_manifest(tiny_data)
    windows, tracks = _csv(cv_dir / OOF_PREDICTIONS), _csv(cv_dir / OOF_TRACKS)
    assert sorted(r["image"] for r in windows) == sorted(row.image for row in rows)  # named as in DATA_DIR
    assert Counter(r["clip_id"] for r in tracks) == Counter({row.clip_id: 1 for row in rows})
    assert Counter(r["clip_id"] for r in windows) == Counter(row.clip_id for row in rows)
    for fold in ("0", "1"):  # each fold validated exactly the clips it held out, trained on the others
        fold_rows = read_manifest(cv_dir / "folds" / fold / "data")
        held = {r["clip_id"] for r in tracks if r["fold"] == fold}
        assert held == {row.clip_id for row in fold_rows if row.split == "valid"}
        assert not held & {row.clip_id for row in fold_rows if row.split == "train"}
        assert (cv_dir / "folds" / fold / "metrics.json").is_file()
    assert list(windows[0])[-2:] == ["repeat", "fold"] and list(windows[0])[:2] == ["image", "clip_id"]


def test_cv_json_holds_fold_scores_their_spread_and_the_pooled_scores(cv_dir):
    document = json.loads((cv_dir / CV_FILE).read_text())
    assert document["folds"] == 2 and document["repeats"] == 1 and document["config"]["arch"] == "squeezenet1_0"
    tracks = _csv(cv_dir / OOF_TRACKS)
    pooled = np.mean([r["true"] == r["predicted"] for r in tracks])
    assert document["pooled"]["track_accuracy"] == pytest.approx(pooled)
    for name in ("accuracy", "macro_f1", "track_accuracy", "track_macro_f1"):
        summary = document["summary"][name]
        assert len(summary["values"]) == 2 and summary["mean"] == pytest.approx(np.mean(summary["values"]))
        assert summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]
    for fold, run in zip(("0", "1"), document["runs"], strict=True):
        metrics = json.loads((cv_dir / "folds" / fold / "metrics.json").read_text())
        assert run["scores"]["accuracy"] == pytest.approx(metrics["accuracy"])  # the run's own numbers
    matrix = np.array(document["track_confusion_matrix"])
    assert matrix.sum() == 16 and np.trace(matrix) == sum(r["true"] == r["predicted"] for r in tracks)
    assert (cv_dir / "confusion_matrix.png").is_file() and (cv_dir / "track_confusion_matrix.png").is_file()
    assert (cv_dir / "report.html").is_file()


def test_the_fold_ensemble_predicts_like_one_model(cv_dir):
    ensemble = Predictor.load(cv_dir, device="cpu")  # a cv folder resolves to its ensemble.safetensors
    assert ensemble.source == cv_dir / "ensemble.safetensors" and len(ensemble.meta.members) == 2
    members = [Predictor.load(cv_dir / "folds" / fold, device="cpu") for fold in ("0", "1")]
    images = [np.random.default_rng(0).integers(0, 255, (32, 44), dtype=np.uint8) for _ in range(3)]
    expected = sum(torch.softmax(m.logits(images), dim=1) for m in members) / 2
    assert torch.allclose(torch.softmax(ensemble.logits(images), dim=1), expected, atol=1e-5)


def test_a_rerun_skips_finished_folds_and_another_fold_count_is_refused(cv_dir, tiny_data, monkeypatch):
    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(cv_module, "train", no_training)
    result = run_cv(tiny_data, TINY_CONFIG, cv_dir, folds=2, show=False, report=False)
    assert result.skipped == ["0", "1"] and result.ran == []
    with pytest.raises(MerError, match="holds the folds of another cross-validation"):
        run_cv(tiny_data, TINY_CONFIG, cv_dir, folds=3, show=False)


def test_a_changed_setting_retrains_the_folds(cv_dir, tiny_data, monkeypatch):
    class Stop(Exception):
        pass

    def stop(*_args):
        raise Stop

    trained = []
    monkeypatch.setattr(cv_module, "train", lambda data, config, run_dir, show: trained.append(run_dir))
    monkeypatch.setattr(cv_module, "_pool", stop)
    with pytest.raises(Stop):
        run_cv(tiny_data, dataclasses.replace(TINY_CONFIG, epochs=2), cv_dir, folds=2, show=False)
    assert [p.name for p in trained] == ["0", "1"]


def test_groups_of_a_data_set_prepared_with_group_by_are_recovered(tiny_audio, tmp_path):
    from mer_fastai.prepare import prepare_dataset

    from .conftest import TINY_SPEC

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
