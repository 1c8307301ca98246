"""The held-out test split: `prepare --test-pct`, `train --test DATA_DIR`, scored once at the end, reported apart."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from mer_fastai.api.training import train
from mer_fastai.data.dataset import read_info, read_manifest
from mer_fastai.data.split import split_groups
from mer_fastai.data.synth import make_demo_audio
from mer_fastai.errors import MerError
from mer_fastai.experiments.runner import run_recipe
from mer_fastai.preparation.prepare import prepare_dataset
from mer_fastai.tasks.opened import open_dataset
from mer_fastai.training.fit import TrainConfig
from mer_fastai.training.items import check_dataset
from mer_fastai.training.loaders import load_dataloaders
from tests.conftest import TINY_SPEC
from tests.data.test_split import clips
from tests.experiments.test_recipe import TINY_RECIPE

TINY = {"arch": "squeezenet1_0", "mode": "whole", "weights": "none", "epochs": 1, "bs": 4, "size": 64,
        "num_workers": 0, "lr": 1e-3}  # fmt: skip


def test_test_side_is_grouped_stratified_and_chosen_before_validation():
    labels, groups = clips(160)
    sides = split_groups(labels, groups, 0.2, seed=42, test_pct=0.2)
    for group in set(groups):
        assert len({side for side, g in zip(sides, groups) if g == group}) == 1
    total = Counter(labels)
    for split in ("valid", "test"):
        held = Counter(label for label, side in zip(labels, sides) if side == split)
        for name, count in total.items():
            assert abs(held[name] / count - 0.2) < 0.06, (split, name, held[name], count)
    assert split_groups(labels, groups, 0.2, seed=42, test_pct=0.0) == split_groups(labels, groups, 0.2, seed=42)
    with pytest.raises(MerError, match="--test-pct must lie between 0 and 1"):
        split_groups(labels, groups, 0.5, seed=42, test_pct=0.5)


@pytest.fixture(scope="module")
def tested_data(tmp_path_factory, tiny_audio) -> Path:
    out = tmp_path_factory.mktemp("tested") / "data"
    prepare_dataset(tiny_audio, out, "emotions", spec=TINY_SPEC, valid_pct=0.25, test_pct=0.25, workers=1,
                    progress=False)  # fmt: skip
    return out


def test_prepare_keeps_a_test_split_the_data_checks_accept(tested_data, tiny_audio):
    checked = check_dataset(open_dataset(tested_data))
    info, rows = checked.info, list(checked.rows)
    assert info.settings["test_pct"] == 0.25 and set(info.counts) == {"train", "valid", "test"}
    test = [row for row in rows if row.split == "test"]
    assert test and all(row.image.startswith(f"test/{row.label}/") for row in test)
    assert all((tested_data / row.image).is_file() for row in test)
    assert {row.label for row in test} == set(info.classes)  # stratified: every class is tested
    assert all(row.group == row.clip_id for row in rows)  # without --group-by each clip is its own group
    sides = {}
    for row in rows:
        assert sides.setdefault(row.clip_id, row.split) == row.split  # a clip never straddles two splits
    again = prepare_dataset(tiny_audio, tested_data, "emotions", spec=TINY_SPEC, valid_pct=0.25, test_pct=0.25,
                            workers=1, progress=False)  # fmt: skip
    assert again.reused == info.clips
    with pytest.raises(MerError, match=r"other settings \(test_pct differ\)"):
        prepare_dataset(tiny_audio, tested_data, "emotions", spec=TINY_SPEC, valid_pct=0.25, workers=1,
                        progress=False)  # fmt: skip


def test_training_never_loads_the_test_split(tested_data):
    rows = read_manifest(tested_data)
    dls = load_dataloaders(tested_data, size=32, bs=4, num_workers=0)
    loaded = {Path(p).relative_to(tested_data).as_posix() for p in [*dls.train_ds.items, *dls.valid_ds.items]}
    assert loaded == {row.image for row in rows if row.split != "test"}


@pytest.fixture(scope="module")
def tested_run(tested_data, tmp_path_factory):
    return train(tested_data, TrainConfig(**TINY), tmp_path_factory.mktemp("tested-run") / "run", show=False)


def test_the_test_split_is_scored_once_and_reported_apart(tested_run, tested_data):
    run = tested_run.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    rows = read_manifest(tested_data)
    test, valid = metrics["test"], metrics["valid"]
    assert test["n_windows"] == sum(row.split == "test" for row in rows)
    assert valid["n_windows"] == metrics["n_windows"] == sum(row.split == "valid" for row in rows)
    assert valid["accuracy"] == metrics["accuracy"] and test["data_dir"] == str(tested_data)
    assert {"accuracy", "macro_f1", "track", "track_accuracy", "per_class", "confusion_matrix"} <= set(test)
    windows = list(csv.DictReader((run / "test_predictions.csv").open()))
    assert [r["image"] for r in windows] == [row.image for row in rows if row.split == "test"]
    assert sum(r["true"] == r["predicted"] for r in windows) / len(windows) == pytest.approx(test["accuracy"])
    tracks = list(csv.DictReader((run / "test_track_predictions.csv").open()))
    assert sum(r["true"] == r["predicted"] for r in tracks) / len(tracks) == pytest.approx(test["track_accuracy"])
    assert (run / "test_track_confusion_matrix.png").is_file()
    html = (run / "report.html").read_text()
    assert "Test scores (tracks)" in html and '<th colspan="2">test</th>' in html


def test_train_test_scores_another_prepared_data_set(tiny_data, tested_data, tmp_path):
    other_audio = make_demo_audio(tmp_path / "other-audio", clips_per_class=2, seconds=2.0, seed=7)
    other = tmp_path / "other"
    prepare_dataset(other_audio, other, "emotions", spec=TINY_SPEC, valid_pct=0.5, workers=1, progress=False)
    result = train(tiny_data, TrainConfig(**TINY, test_dir=str(other)), tmp_path / "run", show=False)
    assert result.metrics["test"]["data_dir"] == str(other)
    assert result.metrics["test"]["n_windows"] == len(read_manifest(other))  # every image of that data set
    with pytest.raises(MerError, match="clip\\(s\\) are also in"):
        train(tiny_data, TrainConfig(**TINY, test_dir=str(tested_data)), tmp_path / "x", show=False)
    with pytest.raises(MerError, match="has its own test split"):
        train(tested_data, TrainConfig(**TINY, test_dir=str(other)), tmp_path / "y", show=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert read_info(other).classes == read_info(tiny_data).classes


def test_a_grid_with_test_pct_fills_the_test_columns_and_writes_its_report(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "grid"
    run_recipe(recipe, out, overrides=["test_pct=0.25"], archs=["squeezenet1_0"], modes=["whole"], show=False)
    (row,) = list(csv.DictReader((out / "results.csv").open()))
    for column in ("track_accuracy", "test_accuracy", "test_macro_f1", "test_track_accuracy", "test_track_macro_f1"):
        assert 0 <= float(row[column]) <= 1, column
    assert "test tracks" in (out / "results.md").read_text()
    html = (out / "report.html").read_text()
    assert "test track accuracy" in html
